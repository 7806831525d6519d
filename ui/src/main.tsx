import { render } from 'preact';
import { App } from './App';
import { applyTheme, currentTheme } from './lib/theme';
import './styles.css';

applyTheme(currentTheme());

const root = document.getElementById('app');
if (root) render(<App />, root);

// Nothing may fail silently: log what escaped a handler (the views show errors they can act on).
window.addEventListener('unhandledrejection', (e) => {
  console.error('[airlock] unhandled rejection:', e.reason);
  e.preventDefault();
});
