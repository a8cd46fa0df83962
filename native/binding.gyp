{
  "targets": [
    {
      "target_name": "meshd_native",
      "sources": ["src/addon.cc", "src/tun.cc", "src/aead.cc", "src/batch.cc", "src/aead-pool.cc", "src/noise-prims.cc", "src/udp.cc", "src/tso.cc", "src/gro.cc", "src/readers.cc", "src/netwatch.cc", "src/bound.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-std=c++17"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
