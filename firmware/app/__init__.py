# MeshLink board firmware (MicroPython). Layout and rules: docs/FIRMWARE.md.
# main.py loads the config (app.config), builds the App (app.app) and runs it.
# Only app.platform knows whether it runs on an ESP32 or on the unix port.
