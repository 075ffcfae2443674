"""No-op jobs per second through pgqueuer (PyPI), a PostgreSQL job queue, on the
database the caller names: the peer baseline of `slipway-bench pipeline`.

    python pgqueuer_bench.py URL JOBS WORKERS PRODUCERS

WORKERS queue managers (one connection each, pgqueuer's defaults) take the jobs;
PRODUCERS clients enqueue them one per transaction, as Slipway's producers
submit. The rate is jobs / (first enqueue -> last job done). Prints one line:
`pgqueuer: N jobs/s`.
"""
import asyncio
import sys
import time

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager


async def main(url, jobs, workers, producers):
    setup = await asyncpg.connect(url)
    await Queries(AsyncpgDriver(setup)).install()
    await setup.close()

    done = 0
    finished = asyncio.Event()
    managers, connections = [], []
    for _ in range(workers):
        connection = await asyncpg.connect(url)
        connections.append(connection)
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint("noop")
        async def noop(job):
            nonlocal done
            done += 1
            if done >= jobs:
                finished.set()

        managers.append(manager)
    running = [asyncio.create_task(manager.run()) for manager in managers]
    await asyncio.sleep(0.5)  # every manager listening

    async def produce(count):
        connection = await asyncpg.connect(url)
        queries = Queries(AsyncpgDriver(connection))
        for _ in range(count):
            await queries.enqueue("noop", None)
        await connection.close()

    start = time.monotonic()
    shares = [jobs // producers + (1 if index < jobs % producers else 0) for index in range(producers)]
    await asyncio.gather(*(produce(share) for share in shares))
    await asyncio.wait_for(finished.wait(), timeout=600)
    elapsed = time.monotonic() - start
    for manager in managers:
        manager.shutdown.set()
    await asyncio.gather(*running, return_exceptions=True)
    for connection in connections:
        await connection.close()
    print(f"pgqueuer: {jobs / elapsed:.0f} jobs/s", flush=True)


if __name__ == "__main__":
    url, jobs, workers, producers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(url, jobs, workers, producers))
