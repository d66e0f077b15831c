"""The configuration every test app starts from (the test services, fast retries, a fixed site URL), and the
compiled templates every test app of a process shares."""

import jinja2

from meander_site.config import engine_options, redis_url_for_limits

# A failed mail is retried within seconds: by the tests' apps, and by the worker processes the tests start (which
# read it from their environment, as MAIL_RETRY_INTERVALS_ENV).
MAIL_RETRY_INTERVALS = [1, 1, 2]
MAIL_RETRY_INTERVALS_ENV = ",".join(str(seconds) for seconds in MAIL_RETRY_INTERVALS)


def app_config(database_url, redis_url, smtp_server, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-" + "x" * 32,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": smtp_server.port,
        "MAIL_TIMEOUT_SECONDS": 3,
        "MAIL_SINK_DIR": None,
        "SITE_URL": "https://demo.meander.test",
        "MAIL_RETRY_INTERVALS": MAIL_RETRY_INTERVALS,
        # The tests' webhook and calendar servers listen on 127.0.0.1 (core/outbound_http.py refuses it otherwise).
        "OUTBOUND_ALLOW_LOOPBACK": True,
    }
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(database_url)
    config["RATELIMIT_STORAGE_URI"] = redis_url_for_limits(redis_url)
    config.update(overrides)
    return config


class CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's compiled templates, kept in memory for every app this test process builds.

    Every slow test, and every test that asks make_app for settings of its own, gets a fresh app, and with it a
    fresh Jinja environment that would parse and compile every template it renders again. Jinja's own bytecode
    cache hands the next environment the compiled code instead, checked against the template's source (an edited
    template is compiled anew). Every test app is configured alike, so the code is the same code.
    """

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()
