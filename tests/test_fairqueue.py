"""The sandbox's queue lends workers to organisations in turn (issue 19 point 1, issue 11 point 5).

A first-come queue let one organisation's burst hold the worker for everyone after it; by least
recent use, an organisation that asks little waits only for the work running, and equally heavy
ones take turns.
"""

from __future__ import annotations

import asyncio
import itertools

from gateway.dp.fairqueue import FairQueue


async def served_order(queue: FairQueue[str], asks: list[str]) -> list[str]:
    """While the one worker is busy, `asks` queue up in this order; then each takes the worker in
    turn, notes its owner and gives the worker back."""
    order: list[str] = []
    busy = await queue.get("whoever")

    async def ask(owner: str) -> None:
        worker = await queue.get(owner)
        order.append(owner)
        await asyncio.sleep(0)
        queue.put(worker)

    tasks = []
    for owner in asks:
        tasks.append(asyncio.ensure_future(ask(owner)))
        await asyncio.sleep(0)  # queued in this order
    queue.put(busy)
    await asyncio.gather(*tasks)
    return order


async def test_a_flood_does_not_stand_in_front_of_a_newcomer() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.put("worker")
    order = await served_order(queue, ["flood"] * 8 + ["victim"])
    # The victim goes second (after one turn of the flood), not ninth.
    assert order.index("victim") == 1, order


async def test_owners_take_turns_and_keep_their_own_order() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.put("worker")
    order = await served_order(queue, ["a", "a", "a", "b", "b", "c"])
    assert order == ["a", "b", "c", "a", "b", "a"], order


async def test_an_owner_served_directly_is_behind_a_newcomer() -> None:
    """The flood took the free worker without waiting; its next ask still queues behind the victim."""
    queue: FairQueue[str] = FairQueue()
    queue.put("worker")
    running = await queue.get("flood")
    order: list[str] = []

    async def ask(owner: str) -> None:
        worker = await queue.get(owner)
        order.append(owner)
        queue.put(worker)

    flood = asyncio.ensure_future(ask("flood"))
    await asyncio.sleep(0)
    victim = asyncio.ensure_future(ask("victim"))
    await asyncio.sleep(0)
    queue.put(running)
    await asyncio.gather(flood, victim)
    assert order == ["victim", "flood"]


async def test_a_caller_that_gives_up_loses_its_turn_not_the_worker() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.put("worker")
    held = await queue.get("a")
    gone = asyncio.ensure_future(queue.get("b"))
    stays = asyncio.ensure_future(queue.get("c"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    queue.put(held)
    assert await stays == "worker"
    assert queue.waiting() == 0 and queue.idle() == 0
    queue.put("worker")
    assert queue.idle() == 1


async def test_with_nobody_waiting_a_free_worker_is_taken_at_once() -> None:
    queue: FairQueue[int] = FairQueue()
    for n in range(3):
        queue.put(n)
    assert [await queue.get("x") for _ in range(3)] == [0, 1, 2]
    assert queue.idle() == 0


class Clocked:
    """One worker on a fake clock: each turn advances the clock by the owner's release time."""

    def __init__(self, held: dict[str, float]) -> None:
        self.now = 0.0
        self.held = held
        self.queue: FairQueue[str] = FairQueue(clock=lambda: self.now)
        self.queue.put("worker")
        self.order: list[str] = []

    async def ask(self, owner: str) -> None:
        worker = await self.queue.get(owner)
        self.order.append(owner)
        self.now += self.held[owner]  # the release runs this long
        await asyncio.sleep(0)
        self.queue.put(worker)

    async def flood_and_bank(self, floods: int, banks: int) -> list[str]:
        """flood-1 and flood-2 ask `floods` times each back to back; the bank asks `banks` times,
        one question after another. The order the worker served them in."""

        async def flood(owner: str) -> None:
            for _ in range(floods):
                await self.ask(owner)

        async def bank() -> None:
            for _ in range(banks):
                await self.ask("bank")
                await asyncio.sleep(0)  # reads its answer, asks again

        await asyncio.gather(flood("flood-1"), flood("flood-2"), bank())
        return self.order


def bank_waits_only_for_the_running_release(order: list[str]) -> bool:
    turns = [n for n, owner in enumerate(order) if owner == "bank"]
    return all(b - a <= 2 for a, b in itertools.pairwise(turns))


async def test_a_light_user_goes_before_every_heavy_one_however_many_flood() -> None:
    """Two organisations flood with releases of a second each; the bank asks one 0.1 s question
    after another. Served least recently first, the bank would wait for one release of each
    flooder (issue 18's fairness bench); by least recent use it waits only for the one running."""
    order = await Clocked({"flood-1": 1.0, "flood-2": 1.0, "bank": 0.1}).flood_and_bank(6, 4)
    # Between two of the bank's turns at most one flooder's release (the one running) ever runs.
    assert bank_waits_only_for_the_running_release(order), order
    # The flooders still share the rest in turn.
    floods = [o for o in order if o != "bank"]
    assert floods.count("flood-1") == floods.count("flood-2") == 6
    assert all(a != b for a, b in itertools.pairwise(floods)), order


async def test_use_while_nobody_else_waited_does_not_count_against_an_owner() -> None:
    """The bank asked alone for a minute (40 releases); then two organisations start flooding.
    Its minute alone took the worker from nobody: it must not put the bank behind the newcomers'
    releases until they have used as much (the full fairness bench saw the bank's one release at
    the flood's start wait 3.2 s, seven releases of the flooders). Where the newcomers and the bank
    are equal (no contended use yet), the newcomer never served goes first: one release each at
    most, once."""
    worker = Clocked({"flood-1": 0.45, "flood-2": 0.45, "bank": 0.1})
    for _ in range(40):  # alone: nobody waits
        await worker.ask("bank")
        worker.now += 1.2
    worker.order.clear()
    order = await worker.flood_and_bank(8, 4)
    # The bank's first turn comes after the release running when it asked and at most one release
    # of the other newcomer (equal so far); from then on, only after the one running.
    assert order.index("bank") <= 2, order
    assert bank_waits_only_for_the_running_release(order), order
