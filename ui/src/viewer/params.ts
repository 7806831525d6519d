// The stand-alone viewer's address:
//   /viewer?sandbox=<id>&transport=webrtc|webcodecs|none&focus=1|0&socketvideo=1|0&scale=1#token=<operator token>
// (`token` is also accepted in the query). Default transport: WebRTC where RTCPeerConnection exists,
// else WebCodecs, else none; default focus 1; socketvideo=0 keeps a controlling WebRTC viewer's
// video on WebRTC; scale=1 shows one screen pixel per device pixel (default: fit the window).

import type { Scaling } from '../lib/video/geometry';
import type { Transport } from '../lib/video/wire';

export interface ViewerParams {
  sandbox: string;
  token: string;
  /** The transport asked for, if a known one was. */
  transport: Transport | undefined;
  focused: boolean;
  socketVideo: boolean;
  scaling: Scaling;
  /** Problems with the address, for the operator. */
  problems: string[];
}

const OFF = ['0', 'false', 'no', 'off'];

/** Reads the viewer's query string and fragment. Pure. */
export function viewerParams(search: string, hash: string): ViewerParams {
  const query = new URLSearchParams(search);
  const frag = new URLSearchParams(hash.replace(/^#/, ''));
  const problems: string[] = [];
  const t = query.get('transport');
  let transport: Transport | undefined;
  if (t === 'webrtc' || t === 'webcodecs' || t === 'none') transport = t;
  else if (t !== null) problems.push(`unknown transport "${t}"`);
  const sandbox = query.get('sandbox') ?? '';
  if (!sandbox) problems.push('no sandbox in the address (add ?sandbox=ID)');
  const focus = query.get('focus');
  const sv = query.get('socketvideo');
  const scale = query.get('scale');
  if (scale !== null && scale !== '1' && scale !== 'fit') problems.push(`unknown scale "${scale}" (scale=1 for 1:1)`);
  return {
    sandbox,
    token: frag.get('token') ?? query.get('token') ?? '',
    transport,
    focused: focus === null || !OFF.includes(focus.toLowerCase()),
    socketVideo: sv === null || !OFF.includes(sv.toLowerCase()),
    scaling: scale === '1' ? '1:1' : 'fit',
    problems,
  };
}

/** The viewer socket's URL on this origin. */
export function socketUrl(loc: { protocol: string; host: string }, sandbox: string, token: string): string {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${loc.host}/api/sandboxes/${encodeURIComponent(sandbox)}/view?token=${encodeURIComponent(token)}`;
}
