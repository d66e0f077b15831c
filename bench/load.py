"""The load generator: bookings and form views over raw http.client, from many loopback addresses.

Each booking is what a browser without JavaScript does: GET /demo on a fresh connection (the CSRF
token and the session cookie come from it), then POST /demo on the same keep-alive connection,
expecting 303. Every booking binds its client socket to its own 127.x.y.z address, so the
per-address rate limit (5 per hour) never interferes. Only loopback traffic, bounded in count.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SLOT = re.compile(r'name="slot" value="([0-9T:-]{16})"')
REQUEST_TIMEOUT_SECONDS = 10.0
# 127.0.0.0/8 minus 127.0.x.x (127.0.0.1 is everybody's), network and broadcast-looking hosts.
_HOSTS_PER_BLOCK = 254 * 256


def source_address(index: int) -> str:
    """A distinct loopback address for each index below ~16 million."""
    block, rest = divmod(index, _HOSTS_PER_BLOCK)
    third, fourth = divmod(rest, 254)
    return f"127.{1 + block % 254}.{third}.{fourth + 1}"


def booking_form(email: str, index: int) -> dict[str, str]:
    return {
        "first_name": "Kari",
        "last_name": f"Benchmark {index}",
        "email": email,
        "phone": "912 34 567",
        "organization_name": "LHL Hjerneslag",
        "role_title": "Koordinator",
        "organization_size": "51-200",
        "current_solution": "Excel og e-post",
        "preferred_demo_timing": "Tirsdager etter kl. 12",
        "notes": "Vi har 120 likepersoner i fem fylker.",
        "website_url": "",
    }


@dataclass
class Outcome:
    index: int
    email: str | None = None
    scheduled: float = 0.0  # perf_counter when it should have started (open loop) or did start
    get_start: float = 0.0
    get_end: float = 0.0
    post_start: float = 0.0
    post_end: float = 0.0
    post_sent_wall: float = 0.0  # time.time() just before the POST went out: compared with the sink's clock
    error: str | None = None
    statuses: list[int] = field(default_factory=list)
    body: str = ""  # the form's HTML, for a booking that picks one of its free times
    prepared: tuple[str, str] | None = None  # (token, cookies) of a form fetched ahead of its POST
    taken: bool = False  # a booking with a time someone else took first (the answer's Location says «tatt»)

    @property
    def get_ms(self) -> float:
        """From when the GET should have started (queueing in the generator included) to its response."""
        return (self.get_end - self.scheduled) * 1000

    @property
    def post_ms(self) -> float:
        return (self.post_end - self.post_start) * 1000

    @property
    def booking_ms(self) -> float:
        return (self.post_end - self.scheduled) * 1000


class Client:
    def __init__(self, port: int, run_tag: str, first_address: int = 0) -> None:
        self.port = port
        self.run_tag = run_tag
        self._next_address = first_address
        self._lock = threading.Lock()

    def take_address(self) -> str:
        with self._lock:
            index = self._next_address
            self._next_address += 1
        return source_address(index)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS, source_address=(self.take_address(), 0)
        )

    def view_form(self, outcome: Outcome) -> Outcome:
        """GET /demo from a fresh address on a fresh connection: a visitor who only looks."""
        connection = self._connect()
        try:
            self._get_form(connection, outcome)
        except Exception as error:  # recorded and counted as an error
            outcome.error = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        return outcome

    def _get_form(self, connection: http.client.HTTPConnection, outcome: Outcome) -> tuple[str, str]:
        outcome.get_start = time.perf_counter()
        connection.request("GET", "/demo", headers={"Accept": "text/html"})
        response = connection.getresponse()
        body = response.read().decode()
        outcome.get_end = time.perf_counter()
        outcome.body = body
        outcome.statuses.append(response.status)
        if response.status != 200:
            raise RuntimeError(f"GET /demo answered {response.status}")
        cookies = "; ".join(value.split(";", 1)[0] for value in response.headers.get_all("Set-Cookie") or [])
        match = TOKEN.search(body)
        if not match:
            raise RuntimeError("no CSRF token in the form")
        return match.group(1), cookies

    def book_slot(self, outcome: Outcome) -> Outcome:
        """GET the form, then POST a booking with one of the free times it offered (spread by the booking's index)."""
        return self.book(outcome, with_slot=True)

    def fetch_form(self, outcome: Outcome) -> Outcome:
        """The first half of a booking, kept for its POST: the form (its token, cookie and free times)."""
        connection = self._connect()
        try:
            outcome.prepared = self._get_form(connection, outcome)
        except Exception as error:  # recorded and counted as an error
            outcome.error = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        return outcome

    def post_prepared_slot(self, outcome: Outcome) -> Outcome:
        """The second half: POST a booking with one of the free times the fetched form offered."""
        if outcome.error:
            return outcome
        return self.book(outcome, with_slot=True)

    def book(self, outcome: Outcome, with_slot: bool = False) -> Outcome:
        """GET the form, then POST a booking with its token and cookie; 303 is success."""
        outcome.email = f"bench-{self.run_tag}-{outcome.index}@bench.meander.no"
        connection = self._connect()
        try:
            token, cookies = outcome.prepared or self._get_form(connection, outcome)
            fields = {**booking_form(outcome.email, outcome.index), "csrf_token": token}
            if with_slot:
                slots = SLOT.findall(outcome.body)
                if not slots:
                    raise RuntimeError("the form offered no free times")
                fields["slot"] = slots[(outcome.index * 7) % len(slots)]
            body = urlencode(fields)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
            if cookies:
                headers["Cookie"] = cookies
            outcome.post_start = time.perf_counter()
            outcome.post_sent_wall = time.time()
            connection.request("POST", "/demo", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            outcome.post_end = time.perf_counter()
            outcome.statuses.append(response.status)
            outcome.taken = "tatt=1" in (response.headers.get("Location") or "")
            if response.status != 303:
                raise RuntimeError(f"POST /demo answered {response.status}")
        except Exception as error:  # recorded and counted as an error
            outcome.error = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        return outcome


def closed_loop(action, count: int, concurrency: int, first_index: int = 0) -> tuple[list[Outcome], float]:
    """`count` actions by `concurrency` threads, each starting its next as soon as the last ended."""

    def run(index: int) -> Outcome:
        outcome = Outcome(index=index, scheduled=time.perf_counter())
        return action(outcome)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        outcomes = list(pool.map(run, range(first_index, first_index + count)))
    return outcomes, time.perf_counter() - started


def open_loop(
    action, rate: float, count: int, max_in_flight: int = 128, first_index: int = 0
) -> tuple[list[Outcome], float]:
    """`count` actions started on a fixed schedule of `rate` per second, whatever the server's pace.

    Latency is counted from each action's scheduled start, so a slow server (or a starved thread pool)
    shows as latency instead of silently lowering the offered load.
    """
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="load") as pool:
        futures = []
        for number in range(count):
            scheduled = started + number / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            outcome = Outcome(index=first_index + number, scheduled=scheduled)
            futures.append(pool.submit(action, outcome))
        outcomes = [future.result() for future in futures]
    return outcomes, time.perf_counter() - started
