"""The simulator backend (``sim://PATH.toml``): a scenario rendered as wire signals."""

from appliance.tapi.sim.interface import SimInterface
from appliance.tapi.sim.scenario import Call, Glitch, Scenario, Trunk, load_scenario, parse_scenario
from appliance.tapi.sim.wire import SimRecord

__all__ = ["Call", "Glitch", "Scenario", "SimInterface", "SimRecord", "Trunk", "load_scenario",
           "parse_scenario"]
