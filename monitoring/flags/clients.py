"""What applications see: the flag read through each system's own SDK, as an application would.

The tests and the benchmark use these to check a backend's writes from the reader's side; the demo
application can use them to split its traffic by the real flag. The SDKs (openfeature-sdk with
openfeature-provider-flagd, UnleashClient) are imported only here.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from monitoring.extras import need
from monitoring.flags import SPECS, UNLEASH_CLIENT_TOKEN_FILE, BadFlagSpec, parse_spec, token_file

Evaluate = Callable[[str], bool]  # a targeting key (user id) -> whether the new path is on for it

KEYS = tuple(f"user-{n}" for n in range(1000))
_domains = itertools.count()


@contextmanager
def state_file_reader(path: Path, flag: str) -> Iterator[Evaluate]:
    """The flag as an application reading the state file on each request sees it (as the demo application does):
    a key is on when its stable bucket (0-99) is below the rollout."""
    from monitoring.flags.store import StateStore

    store = StateStore(path, flag)
    buckets = {key: int(hashlib.sha256(f"{flag}/{key}".encode()).hexdigest(), 16) % 100 for key in KEYS}
    yield lambda key: buckets[key] < store.percentage(store.read())


@contextmanager
def flagd_file_reader(path: Path, flag: str, default: bool = True) -> Iterator[Evaluate]:
    """The flag as the OpenFeature flagd provider evaluates it in-process from `path` (file mode).

    The provider polls the file's modification time (every `deadline_ms`, 500 ms by default) and reloads it.
    The code default is `True` for the tests on purpose: a flag the file does not resolve shows up as on, not
    as off. An application passes False: without an answer, users stay on the old version.
    """
    need("openfeature.contrib.provider.flagd", "flagd", "reading a flag through the OpenFeature flagd provider")
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    domain = f"flagd-file-{next(_domains)}"
    provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
    api.set_provider_and_wait(provider, domain=domain)
    client = api.get_client(domain)
    try:
        yield lambda key: client.get_boolean_value(flag, default, EvaluationContext(targeting_key=key))
    finally:
        provider.shutdown()


@contextmanager
def unleash_reader(url: str, client_token: str, flag: str, refresh_seconds: int = 1) -> Iterator[Evaluate]:
    """The flag as the Python UnleashClient sees it (it polls the server every `refresh_seconds`)."""
    need("UnleashClient", "unleash", "reading a flag through the Unleash client")
    from UnleashClient import UnleashClient  # type: ignore[attr-defined]  # the package re-exports it untyped

    with tempfile.TemporaryDirectory(prefix="unleash-client-") as cache:
        client = UnleashClient(url=f"{url.rstrip('/')}/api", app_name="monitoring-flags",
                               refresh_interval=refresh_seconds, disable_metrics=True, disable_registration=True,
                               cache_directory=cache, custom_headers={"Authorization": client_token})
        client.initialize_client()
        try:
            yield lambda key: client.is_enabled(flag, {"userId": key})
        finally:
            client.destroy()


def sdk_reader(spec: str, flag: str, environ: Mapping[str, str] = os.environ) -> AbstractContextManager[Evaluate]:
    """The reader of the flag system `spec` names (`flagd:PATH`, `unleash:URL`), as an application would use it:
    a flag it cannot resolve is off. Unleash's client token comes from the file UNLEASH_CLIENT_TOKEN_FILE names.
    A context manager; a flagd file that is missing or not flagd's is refused before the SDK starts."""
    kind, where = parse_spec(spec)
    if kind == "flagd":
        from monitoring.flags import FlagUnavailable
        from monitoring.flags.flagd import FlagdFile

        if not Path(where).is_file():
            raise BadFlagSpec(f"--flags {spec}: no such file")
        try:
            FlagdFile(Path(where), flag).read()
        except FlagUnavailable as error:
            raise BadFlagSpec(str(error)) from None
        return flagd_file_reader(Path(where), flag, default=False)
    if kind == "unleash":
        from monitoring.flags.unleash import read_token

        token = read_token(token_file(spec, environ, UNLEASH_CLIENT_TOKEN_FILE, "client"), "client")
        return unleash_reader(where, token, flag)
    raise BadFlagSpec(f"--flags {spec!r}: not a flag system an SDK reads ({SPECS.replace('state, ', '')})")


def share_on(evaluate: Evaluate, keys: tuple[str, ...] = KEYS) -> float:
    """The percentage of `keys` for which the flag is on."""
    return 100 * sum(evaluate(key) for key in keys) / len(keys)


def wait_for_share(evaluate: Evaluate, wanted: Callable[[float], bool], timeout: float,
                   keys: tuple[str, ...] = KEYS) -> tuple[float, float]:
    """Poll until the share of keys with the flag on satisfies `wanted`; (seconds it took, last share).

    TimeoutError, naming the last share seen, when it does not within `timeout` seconds.
    """
    started = time.monotonic()
    while True:
        share = share_on(evaluate, keys)
        elapsed = time.monotonic() - started
        if wanted(share):
            return elapsed, share
        if elapsed > timeout:
            raise TimeoutError(f"the flag was still on for {share:.1f} % of the keys after {timeout:.0f} s")
        time.sleep(0.02)
