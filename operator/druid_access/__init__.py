"""druid-access-operator: Druid basic-security and Pivot connections as Kubernetes resources."""

__version__ = "0.1.0"
