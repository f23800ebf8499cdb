"""CP2K work chains: single points with restart handlers, labelling of structure sets, AIMD."""
