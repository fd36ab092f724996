"""Container and Kubernetes evidence (Defender for Containers / Defender for Cloud)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import SerializeAsAny

from xdrsync.models.evidence import ODATA_PREFIX, Evidence
from xdrsync.models.evidence_enums import KubernetesPlatform
from xdrsync.models.evidence_network import IpEvidence
from xdrsync.models.identity import EntityKey, folded, make_key, text


def _scoped(scope: Evidence | None, name: str | None) -> str | None:
    """`<scope key>/<name>`: Kubernetes names are only unique inside their namespace/cluster."""
    name = text(name)
    if name is None:
        return None
    key = scope.entity_key() if scope is not None else None
    return f"{key.value}/{name}" if key else name


class ContainerRegistryEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "containerRegistryEvidence"

    registry: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("containerRegistry", folded(self.registry))

    def _label(self) -> str | None:
        return text(self.registry)


class ContainerImageEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "containerImageEvidence"

    digest_image: ContainerImageEvidence | None = None
    image_id: str | None = None
    registry: ContainerRegistryEvidence | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("containerImage", text(self.image_id))

    def _label(self) -> str | None:
        return text(self.image_id)


class KubernetesClusterEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesClusterEvidence"

    cloud_resource: SerializeAsAny[Evidence] | None = None
    distribution: str | None = None
    name: str | None = None
    platform: KubernetesPlatform | None = None
    version: str | None = None

    def entity_key(self) -> EntityKey | None:
        # The cloud resource id (AKS/EKS/GKE) is globally unique; a bare name is a fallback.
        resource = self.cloud_resource.entity_key() if self.cloud_resource else None
        return make_key("kubernetesCluster", resource.value if resource else text(self.name))

    def _label(self) -> str | None:
        return text(self.name)


class KubernetesNamespaceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesNamespaceEvidence"

    cluster: KubernetesClusterEvidence | None = None
    labels: Mapping[str, Any] | None = None
    name: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("kubernetesNamespace", _scoped(self.cluster, self.name))

    def _label(self) -> str | None:
        return text(self.name)


class KubernetesServiceAccountEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesServiceAccountEvidence"

    name: str | None = None
    namespace: KubernetesNamespaceEvidence | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("kubernetesServiceAccount", _scoped(self.namespace, self.name))

    def _label(self) -> str | None:
        return text(self.name)


class KubernetesSecretEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesSecretEvidence"

    name: str | None = None
    namespace: KubernetesNamespaceEvidence | None = None
    secret_type: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("kubernetesSecret", _scoped(self.namespace, self.name))

    def _label(self) -> str | None:
        return text(self.name)


class KubernetesControllerEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesControllerEvidence"

    labels: Mapping[str, Any] | None = None
    name: str | None = None
    namespace: KubernetesNamespaceEvidence | None = None
    type: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("kubernetesController", _scoped(self.namespace, self.name))

    def _label(self) -> str | None:
        return text(self.name)


class KubernetesServiceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesServiceEvidence"
    GRAPH_KEYS: ClassVar[Mapping[str, str]] = {
        "cluster_ip": "clusterIP",
        "external_ips": "externalIPs",
    }

    cluster_ip: IpEvidence | None = None
    external_ips: tuple[IpEvidence, ...] = ()
    labels: Mapping[str, Any] | None = None
    name: str | None = None
    namespace: KubernetesNamespaceEvidence | None = None
    selector: Mapping[str, Any] | None = None
    service_type: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("kubernetesService", _scoped(self.namespace, self.name))

    def _label(self) -> str | None:
        return text(self.name)


class KubernetesPodEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "kubernetesPodEvidence"

    containers: tuple[ContainerEvidence, ...] = ()
    controller: KubernetesControllerEvidence | None = None
    ephemeral_containers: tuple[ContainerEvidence, ...] = ()
    init_containers: tuple[ContainerEvidence, ...] = ()
    labels: Mapping[str, Any] | None = None
    name: str | None = None
    namespace: KubernetesNamespaceEvidence | None = None
    pod_ip: IpEvidence | None = None
    service_account: KubernetesServiceAccountEvidence | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("kubernetesPod", _scoped(self.namespace, self.name))

    def _label(self) -> str | None:
        return text(self.name)


class ContainerEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "containerEvidence"

    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    container_id: str | None = None
    image: ContainerImageEvidence | None = None
    is_privileged: bool | None = None
    name: str | None = None
    pod: KubernetesPodEvidence | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("container", text(self.container_id))

    def _label(self) -> str | None:
        return text(self.name) or text(self.container_id)


# A pod holds containers and a container names its pod: resolve the cycle now that both exist.
KubernetesPodEvidence.model_rebuild()
ContainerEvidence.model_rebuild()

__all__ = [
    "ContainerEvidence",
    "ContainerImageEvidence",
    "ContainerRegistryEvidence",
    "KubernetesClusterEvidence",
    "KubernetesControllerEvidence",
    "KubernetesNamespaceEvidence",
    "KubernetesPodEvidence",
    "KubernetesSecretEvidence",
    "KubernetesServiceAccountEvidence",
    "KubernetesServiceEvidence",
]
