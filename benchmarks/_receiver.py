"""A fast webhook receiver for benchmarks, run as its own process: HTTP/1.1 keep-alive on
asyncio, answers 204 at once, and remembers when each task's message arrived.

POST <any path>   a delivery (JSON body with taskId): 204
GET /stats        {"<taskId>": <unix time of first receipt>, ...}
Usage: python -m benchmarks._receiver <port>
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

arrivals: dict[str, float] = {}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if request_line.startswith("GET /stats"):
                answer = json.dumps(arrivals).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
            else:
                task_id = json.loads(body).get("taskId", "")
                arrivals.setdefault(task_id, time.time())
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
