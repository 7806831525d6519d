"""Drives Airlock's MCP server with the official MCP Python SDK, unmodified.

Usage: mcp_client.py URL TOKEN
Prints one JSON object describing what the server answered; the Rust test asserts on it.
"""

import asyncio
import base64
import json
import struct
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def summarise(result):
    out = {"is_error": bool(result.is_error), "texts": [], "images": []}
    for c in result.content:
        if c.type == "text":
            out["texts"].append(c.text)
        elif c.type == "image":
            png = base64.b64decode(c.data)
            w, h = struct.unpack(">II", png[16:24]) if png[:8] == b"\x89PNG\r\n\x1a\n" else (0, 0)
            out["images"].append({"mime": c.mime_type, "bytes": len(png), "width": w, "height": h})
    return out


async def main(url, token):
    report = {}
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                report["server"] = init.server_info.name
                tools = await session.list_tools()
                report["tools"] = sorted(t.name for t in tools.tools)
                # The desktop's terminal takes a while under emulation: wait until it has the focus
                # and a shell (the guest writes this file then; cat is allowlisted).
                for _ in range(240):
                    r = await session.call_tool("exec", {"argv": ["cat", "/tmp/.airlock-terminal-ready"]})
                    if not r.is_error and '"exit_code":0' in r.content[0].text:
                        break
                    await asyncio.sleep(0.5)
                calls = [
                    ("screenshot", "computer", {"action": "screenshot"}),
                    ("click", "computer", {"action": "left_click", "coordinate": [640, 400]}),
                    ("type", "computer", {"action": "type", "text": "echo mcp-sdk > /tmp/from-python.txt"}),
                    ("enter", "computer", {"action": "key", "text": "Return"}),
                    ("wait", "computer", {"action": "wait", "duration": 1}),
                    ("exec", "exec", {"argv": ["cat", "/tmp/from-python.txt"]}),
                    ("openai_move", "computer_openai", {"action": {"type": "move", "x": 10, "y": 10}}),
                    ("cursor", "computer", {"action": "cursor_position"}),
                    ("zoom", "computer", {"action": "zoom", "region": [0, 0, 639, 399]}),
                    ("unknown_action", "computer", {"action": "teleport"}),
                    ("off_screen", "computer", {"action": "left_click", "coordinate": [5000, 10]}),
                    ("huge_text", "computer", {"action": "type", "text": "x" * 200000}),
                    ("bad_field", "computer", {"action": "screenshot", "colour": "red"}),
                    ("unknown_tool", "teleport", {}),
                ]
                for name, tool, args in calls:
                    try:
                        report[name] = summarise(await session.call_tool(tool, args))
                    except Exception as e:  # a protocol-level error: recorded, the test decides
                        report[name] = {"exception": f"{type(e).__name__}: {e}"}
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
