import { defineConfig } from 'vitest/config';

// The console is served from Tauri's custom protocol and from `/` of `airlock serve`: relative
// asset URLs (base './') work under both. Preact's automatic JSX runtime needs no plugin.
const api = process.env.AIRLOCK_API; // `npm run dev` proxies /api to this `airlock serve` (http://127.0.0.1:PORT)

export default defineConfig({
  base: './',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
  server: api ? { proxy: { '/api': { target: api, ws: true, changeOrigin: true } } } : {},
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
});
