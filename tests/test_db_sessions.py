"""Sessions give their connection back however the update that opened them ends."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.repositories.users import UserRepository


async def test_cancelled_and_finished_updates_leave_no_connection_checked_out(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    lingering = 20
    all_waiting = asyncio.Event()

    async def update(user_id: int, linger: bool) -> None:
        async with session_factory() as session:
            await UserRepository(session).save_profiles({user_id: ("u", "U", "en")})
            await session.commit()
            await UserRepository(session).stored_many([user_id])
            if linger:
                nonlocal lingering
                lingering -= 1
                if lingering == 0:
                    all_waiting.set()
                await asyncio.sleep(10)  # cancelled here, inside the session

    tasks = [asyncio.create_task(update(n, linger=n % 2 == 0)) for n in range(1, 41)]
    await all_waiting.wait()
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with session_factory() as session:
        stored = await UserRepository(session).stored_many(range(1, 41))
    assert sorted(stored) == list(range(1, 41))
