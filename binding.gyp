{
  "targets": [
    {
      "target_name": "sd_activate",
      "sources": ["src/native/sd_activate.c", "src/native/notify_receiver.c", "src/native/watch.c", "src/native/handover.c", "src/native/recv_message.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-lrt"]
    }
  ]
}
