# Rules on incoming readings, and the named handlers that act on them.
# Rules: pure integer comparisons on value_milli (no floats); a handler is
# looked up by name ("relay", "led", "log") and prints one ACTION line on
# every platform, so the unix port (tests, simulation) shows what a board
# would switch. Pins come from app.platform and exist only on a board.
from app import platform

_OPS = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
}


def compare(op, value_milli, limit_milli):
    """Apply a rule operator to two integers. Raises KeyError on an unknown op."""
    return _OPS[op](value_milli, limit_milli)


class Rules:
    """The configured rules (Config.rules), evaluated in order."""

    def __init__(self, rules):
        self.rules = rules

    def matches(self, from_id, sensor, value_milli):
        """The rules that fire for one reading -> list of (action, arg, why)."""
        out = []
        if type(value_milli) is not int:
            return out
        for r in self.rules:
            if r["sensor"] != sensor or (r["from"] != "*" and r["from"] != from_id):
                continue
            if compare(r["op"], value_milli, r["value_milli"]):
                why = "rule: %s from %s %s %d milli" % (sensor, from_id, r["op"], r["value_milli"])
                out.append((r["action"], r["arg"], why))
        return out


class Handlers:
    """Named actions. relay and led switch an OutputPin (configured in
    Config.handlers; a simulated one on the unix port); log prints only."""

    def __init__(self, handler_specs):
        self.pins = {}
        for name in ("relay", "led"):
            spec = handler_specs.get(name)
            if spec is not None or not platform.ON_BOARD:
                self.pins[name] = platform.OutputPin(name, spec or {})
        self.count = 0

    def run(self, action, arg, why):
        """Execute one action and print its ACTION line -> the line.

        Returns None (and prints an IGNORED line) for an unknown action or a
        relay/led arg that is not an integer: commands come from the mesh.
        """
        if action == "log":
            line = "ACTION log=%s (%s)" % (arg, why)
        elif action in ("relay", "led") and type(arg) is int:
            pin = self.pins.get(action)
            if pin is None:
                line = "ACTION %s=%d (%s) [no %s pin configured]" % (action, arg, why, action)
            else:
                pin.set(arg)
                line = "ACTION %s=%d (%s)" % (action, arg, why)
        else:
            platform.log("IGNORED action %r arg %r (%s)" % (action, arg, why))
            return None
        self.count += 1
        platform.log(line)
        return line
