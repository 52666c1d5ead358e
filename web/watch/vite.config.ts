import { defineConfig } from "vitest/config";

// The page is served by the gateway at /watch/ from the Go package
// internal/watch, which embeds the build (committed, so `go build` needs no
// node; `make watch-check` rebuilds it and fails on a difference).
export default defineConfig({
  base: "/watch/",
  build: {
    outDir: "../../internal/watch/dist",
    emptyOutDir: true,
    // One bundle, no source map: small and byte-for-byte reproducible.
    sourcemap: false,
    target: "es2022",
    assetsInlineLimit: 0,
  },
  server: {
    // `npm run dev` against a running `croupier dev`.
    proxy: {
      "/synctv.client.ClientService": "http://127.0.0.1:8090",
      "/time": "http://127.0.0.1:8090",
      // The WebSocket accepts its own origin only: present that one.
      "/api/room/ws": { target: "ws://127.0.0.1:8090", ws: true, headers: { origin: "http://127.0.0.1:8090" } },
      "/watch/media": "http://127.0.0.1:8090",
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});
