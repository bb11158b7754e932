"""The technician's serial console: ``appliance console``."""

from appliance.console.commands import COMMANDS, ConsoleContext, ToolRunner
from appliance.console.shell import ConsoleShell

__all__ = ["COMMANDS", "ConsoleContext", "ConsoleShell", "ToolRunner"]
