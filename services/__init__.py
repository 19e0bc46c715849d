"""The flowhost service SDK: write a ``WebServiceSpec``, decorate methods with ``@endpoint``.

```python
from flowhost.services import WebServiceSpec, endpoint, Resources, Scaling, Artifacts
```
"""

from flowhost.errors import ArtifactError, FlowhostError, SpecError
from flowhost.services.audit import audit
from flowhost.services.config import Artifacts, Environment, Resources, Scaling
from flowhost.services.definition import EndpointDefinition, Payload, ServiceDefinition
from flowhost.services.endpoint import endpoint
from flowhost.services.loader import load_service
from flowhost.services.spec import WebServiceSpec, definition_of

__all__ = [
    "ArtifactError",
    "Artifacts",
    "EndpointDefinition",
    "Environment",
    "FlowhostError",
    "Payload",
    "Resources",
    "Scaling",
    "ServiceDefinition",
    "SpecError",
    "WebServiceSpec",
    "audit",
    "definition_of",
    "endpoint",
    "load_service",
]
