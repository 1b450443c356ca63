"""The DP engine: OpenDP measurements from checked plans, and the sandbox that runs them."""

import os

# OpenDP turns Rust backtraces on when it is imported, and capturing one costs about half a
# second per error; the engine meets errors on purpose (thresholds too low to bound delta)
# and never shows their text. Rust reads the variable at its first error, so setting it here
# works even after OpenDP was imported; sandbox workers inherit it.
os.environ["RUST_BACKTRACE"] = "0"
