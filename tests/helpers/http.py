"""Pieces of requests that tests build by hand."""

import io


class WatchedBody(io.BytesIO):
    """A request body that remembers whether anyone read from it."""

    was_read = False

    def read(self, *args):
        self.was_read = True
        return super().read(*args)

    readline = read
