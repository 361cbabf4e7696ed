# The app of a board that was updated over the air (docs/BOARDS.md §13):
# main.py runs it instead of app.App when ota.json exists. Rule: hooks only,
# the work is in app/ota.py; a never-updated board loads neither module.
import asyncio

from app import ota, platform
from app.app import App


class OtaApp(App):
    """The app of a board that has an OTA state (main.py picks it): it prints
    its version, guards a trial, and opens every session with its status
    record (which confirms a trial). A never-updated board runs app.App and
    loads none of this (heap: every module interns its names for good)."""

    async def main(self):
        ota.init(self.cfg.base_dir)
        platform.log("FIRMWARE version=%s trial=%d" % (ota.version(), ota.trial()))
        if ota.trial():
            asyncio.create_task(ota.trial_guard())
        await App.main(self)

    async def _session(self, bl):
        await bl.send(ota.on_link_up())
        await App._session(self, bl)
