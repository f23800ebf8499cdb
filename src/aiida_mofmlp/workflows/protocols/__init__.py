"""Protocol files (``*.yaml``) of the public work chains and the :class:`ProtocolMixin` that reads them."""

from aiida_mofmlp.workflows.protocols.utils import ProtocolMixin, load_overrides, read_protocol_file

__all__ = ["ProtocolMixin", "load_overrides", "read_protocol_file"]
