"""A plugin that kills any worker process importing it (the engine process is spared)."""

from __future__ import annotations

import os

if os.environ.get("CASINO_TEST_ENGINE_PID") != str(os.getpid()):
    os._exit(3)
