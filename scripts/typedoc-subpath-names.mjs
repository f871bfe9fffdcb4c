// A TypeDoc plugin: names each entry-point module after the specifier users import it by
// (`sd-activate/http`), instead of its path in this repository (`adapters/http`).
// The names come from typedoc.config.mjs (option subpathNames: source file -> specifier).
import { resolve } from 'node:path';
import { Converter, ParameterType, ReflectionKind } from 'typedoc';

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.options.addDeclaration({
    name: 'subpathNames',
    help: 'Module names by entry-point source file (relative to the working directory).',
    type: ParameterType.Mixed,
    defaultValue: {},
  });

  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Module)) return;
    const names = app.options.getValue('subpathNames');
    const declaration = context.getSymbolFromReflection(reflection)?.declarations?.[0];
    const file = declaration?.getSourceFile().fileName;
    if (!file) return;
    for (const [source, name] of Object.entries(names)) {
      if (resolve(source) === resolve(file)) reflection.name = name;
    }
  });
}
