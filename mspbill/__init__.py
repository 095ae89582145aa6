"""mspbill core: billing for Managed Service Providers.  Never imports Qt."""

__version__ = "0.1.0"
