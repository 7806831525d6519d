import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The console is served from Tauri's custom protocol and from `/` of `airlock serve`: relative
// asset URLs (base './') work under both. Preact's automatic JSX runtime needs no plugin.
// Two pages: the console (index.html) and the stand-alone viewer (viewer.html, `GET /viewer`).
const api = process.env.AIRLOCK_API; // `npm run dev` proxies /api to this `airlock serve` (http://127.0.0.1:PORT)

export default defineConfig({
  base: './',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rollupOptions: {
      input: {
        index: fileURLToPath(new URL('./index.html', import.meta.url)),
        viewer: fileURLToPath(new URL('./viewer.html', import.meta.url)),
      },
    },
  },
  server: api ? { proxy: { '/api': { target: api, ws: true, changeOrigin: true } } } : {},
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
});
