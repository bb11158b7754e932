"""A TCP forwarding proxy in its own process: the test's network between a site and the centre.

``python tcpproxy.py LISTEN_PORT TARGET_PORT`` forwards 127.0.0.1:LISTEN to
127.0.0.1:TARGET until killed. Killing it cuts every connection at once (a
network cut); starting it again on the same port restores the network.
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(reader, writer, target):
    try:
        r2, w2 = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, w2), pipe(r2, writer))


async def main(listen, target):
    server = await asyncio.start_server(lambda r, w: handle(r, w, target), "127.0.0.1", listen,
                                        reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
