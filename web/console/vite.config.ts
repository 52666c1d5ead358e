/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The build goes where the Go package embeds it (internal/console/dist) and
// is committed, so `go build` needs no Node.js; `make check-console`
// rebuilds it and fails when it differs.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: '../../internal/console/dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // `npm run dev` against a running `croupier dev` (its HTTP port).
    proxy: { '/api': { target: 'https://127.0.0.1:8080', secure: false } },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
})
