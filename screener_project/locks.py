"""A Redis lock that is short and renewed while its holder works: a killed holder frees it within seconds.

redis-py's Lock, with a thread that extends it every third of its timeout while held. A lock held for minutes "to be
safe" blocks everyone for minutes after its holder is SIGKILLed; this one lasts only `timeout` seconds past the
holder's last renewal. `lost` turns true when a renewal finds the lock gone or someone else's (Redis emptied, a
stall longer than the timeout); a holder about to record its work calls check() first.
"""

from __future__ import annotations

import logging
import threading

import redis as redis_lib
from redis.exceptions import LockError, LockNotOwnedError

logger = logging.getLogger(__name__)


class LockLost(RuntimeError):
    """The lock expired or was taken under its holder, who must stop before recording anything."""


class RenewedLock:
    def __init__(
        self,
        client: redis_lib.Redis,
        name: str,
        *,
        timeout: float,
        blocking_timeout: float | None = None,
        sleep: float = 0.1,
    ) -> None:
        # thread_local=False: the renewing thread must see the token the holder's thread acquired. `sleep`: seconds
        # between attempts while it waits.
        self.lock = client.lock(
            name, timeout=timeout, blocking_timeout=blocking_timeout, sleep=sleep, thread_local=False
        )
        self.name = name
        self.lost = False
        self._every = timeout / 3
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, *, blocking: bool = True) -> bool:
        if not self.lock.acquire(blocking=blocking):
            return False
        self._renewer = threading.Thread(target=self._renew, name=f"renew {self.name}", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.lock.reacquire()
            except LockNotOwnedError:
                logger.error("lock %s lost while held", self.name)
                self.lost = True
                return
            except redis_lib.RedisError as error:  # the next renewal may get through: the timeout leaves room for two
                logger.warning("lock %s: renewal failed (%r)", self.name, error)

    def check(self) -> None:
        if self.lost:
            raise LockLost(f"lock {self.name} lost")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self.lock.release()
        except LockError:
            pass  # expired or taken over: nothing of ours to release
        except redis_lib.RedisError as error:
            logger.warning("lock %s: release failed (%r); it expires by itself", self.name, error)

    def __enter__(self) -> RenewedLock:
        if not self.acquire():
            raise LockError(f"lock {self.name} still busy after waiting")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
