// Entry of the stand-alone viewer page (`GET /viewer` of `airlock serve`, ui/viewer.html): the
// console's ViewerConnection and InputCapture on one sandbox, plus `window.airlockViewer` for the
// streaming tests and `airlock bench stream`.

import { render } from 'preact';
import { ViewerConnection } from '../lib/video/connection';
import { InputCapture } from '../lib/video/input';
import { HookRecorder, viewerHooks, type ViewerHooks } from './hooks';
import { socketUrl, viewerParams } from './params';
import { Viewer } from './Viewer';
import './viewer.css';

declare global {
  interface Window {
    airlockViewer?: ViewerHooks;
  }
}

const params = viewerParams(location.search, location.hash);
const clientErrors: string[] = [...params.problems];
const rec = new HookRecorder();
const conn = new ViewerConnection({
  sandbox: params.sandbox,
  url: () => Promise.resolve(socketUrl(location, params.sandbox, params.token)),
  focused: params.focused,
  transport: params.transport,
  socketVideo: params.socketVideo,
  tap: rec.tap,
});
document.title = params.sandbox ? `Airlock · ${params.sandbox}` : 'Airlock viewer';

const root = document.getElementById('app');
if (!root) throw new Error('viewer.html has no #app');
render(<Viewer conn={conn} sandbox={params.sandbox} scaling={params.scaling} />, root);
// The first render is synchronous: the media elements exist now, and the hooks are in place
// before the page's load event.
const video = document.getElementById('video') as HTMLVideoElement;
const canvas = document.getElementById('canvas') as HTMLCanvasElement;
const refine = document.getElementById('refine') as HTMLCanvasElement;
const stage = document.getElementById('stage') as HTMLElement;
conn.attach({ video, canvas, refine });
window.airlockViewer = viewerHooks(rec, conn, { video, canvas }, { sandbox: params.sandbox, clientErrors });
conn.subscribe((s) => {
  if (s.notice && clientErrors[clientErrors.length - 1] !== s.notice.text) {
    clientErrors.push(s.notice.text);
    if (clientErrors.length > 200) clientErrors.shift();
  }
});
const input = new InputCapture(stage, conn, { pointerLock: false });
addEventListener('pagehide', () => {
  input.dispose();
  conn.close();
});
if (params.sandbox) conn.start();
