"""The platform's network: a VPC with private subnets, VPC endpoints and security groups.

Services and the control plane reach AWS APIs through VPC endpoints (a gateway for
S3, interface endpoints for the rest), so nothing needs a NAT gateway for AWS calls.
A NAT gateway (with public subnets and an internet gateway) is created only when the
config asks for one, e.g. for EKS nodes pulling public images.

Security groups are closed: the load balancer takes HTTP from inside the VPC only,
services take traffic from the load balancer only, the database from the control
plane only; environment builds take nothing and send HTTPS and HTTP only (the package
index, AWS endpoints). No ingress rule anywhere is open to 0.0.0.0/0.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["INTERFACE_ENDPOINTS", "SERVICE_PORT", "Network", "NetworkArgs"]

# Services listen on this port behind the load balancer (the serving runtime's default).
SERVICE_PORT = 8080
SLOTS = "abc"
# AWS APIs reached over interface endpoints: images (ECR), logs, queues, credentials,
# secrets, KMS, ECS and ALB control (control plane), metrics (scaler), traces (ADOT).
INTERFACE_ENDPOINTS = (
    "ecr.api",
    "ecr.dkr",
    "ecs",
    "elasticloadbalancing",
    "kms",
    "logs",
    "monitoring",
    "secretsmanager",
    "sqs",
    "sts",
    "xray",
)


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    az_count: int
    nat_gateway: bool
    tagging: Tagging


def _in(
    port: int,
    description: str,
    cidrs: Sequence[str] = (),
    groups: Sequence[pulumi.Input[str]] = (),
) -> aws.ec2.SecurityGroupIngressArgs:
    """One TCP ingress rule from CIDR blocks or from other security groups."""
    return aws.ec2.SecurityGroupIngressArgs(
        protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_blocks=list(cidrs) or None,
        security_groups=list(groups) or None,
        description=description,
    )


def _out(port: int, description: str, cidrs: Sequence[str]) -> aws.ec2.SecurityGroupEgressArgs:
    return aws.ec2.SecurityGroupEgressArgs(
        protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_blocks=list(cidrs),
        description=description,
    )


# Outbound anywhere (AWS endpoints in the VPC, and the NAT gateway when there is one).
EVERYWHERE = aws.ec2.SecurityGroupEgressArgs(
    protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"], description="outbound"
)


class Network(pulumi.ComponentResource):
    """VPC, private subnets across AZs, route tables, VPC endpoints and security groups."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tagging.tags
        block = ipaddress.IPv4Network(args.cidr)
        ranges = list(block.subnets(new_prefix=block.prefixlen + 4))
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(f"{name}-vpc"),
            opts=child,
        )
        private_rt = aws.ec2.RouteTable(
            f"{name}-private", vpc_id=vpc.id, tags=tags(f"{name}-private"), opts=child
        )
        private: list[aws.ec2.Subnet] = []
        for i in range(args.az_count):
            slot = SLOTS[i]
            subnet = aws.ec2.Subnet(
                f"{name}-private-{slot}",
                vpc_id=vpc.id,
                cidr_block=str(ranges[i]),
                availability_zone=zones.names[i],
                map_public_ip_on_launch=False,
                tags=tags(f"{name}-private-{slot}", **{"kubernetes.io/role/internal-elb": "1"}),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{slot}",
                subnet_id=subnet.id,
                route_table_id=private_rt.id,
                opts=child,
            )
            private.append(subnet)

        if args.nat_gateway:
            self._nat(name, args, vpc, private_rt, ranges, zones, child)

        vpc_cidr = [args.cidr]
        self.endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc.id,
            description="VPC interface endpoints: HTTPS from inside the VPC",
            ingress=[_in(443, "HTTPS from the VPC", cidrs=vpc_cidr)],
            tags=tags(f"{name}-endpoints"),
            opts=child,
        )
        self.vpc_link_sg = aws.ec2.SecurityGroup(
            f"{name}-vpc-link",
            vpc_id=vpc.id,
            description="API Gateway VPC link: no ingress, HTTP out to the load balancer",
            egress=[_out(80, "HTTP to the internal ALB", vpc_cidr)],
            tags=tags(f"{name}-vpc-link"),
            opts=child,
        )
        self.alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb",
            vpc_id=vpc.id,
            description="Internal ALB: HTTP from inside the VPC (VPC link, long sync calls)",
            ingress=[_in(80, "HTTP from the VPC", cidrs=vpc_cidr)],
            egress=[_out(SERVICE_PORT, "to service instances", vpc_cidr)],
            tags=tags(f"{name}-alb"),
            opts=child,
        )
        self.service_sg = aws.ec2.SecurityGroup(
            f"{name}-services",
            vpc_id=vpc.id,
            description="Service instances: traffic from the internal ALB only",
            ingress=[_in(SERVICE_PORT, "from the ALB", groups=[self.alb_sg.id])],
            egress=[EVERYWHERE],
            tags=tags(f"{name}-services"),
            opts=child,
        )
        self.lambda_sg = aws.ec2.SecurityGroup(
            f"{name}-lambdas",
            vpc_id=vpc.id,
            description="Control-plane Lambdas: no ingress",
            egress=[EVERYWHERE],
            tags=tags(f"{name}-lambdas"),
            opts=child,
        )
        self.build_sg = aws.ec2.SecurityGroup(
            f"{name}-builds",
            vpc_id=vpc.id,
            description="Environment builds: no ingress; HTTPS and HTTP out (index, AWS APIs)",
            egress=[
                _out(443, "HTTPS: package index, AWS endpoints", ["0.0.0.0/0"]),
                _out(80, "HTTP: package index", ["0.0.0.0/0"]),
            ],
            tags=tags(f"{name}-builds"),
            opts=child,
        )
        self.database_sg = aws.ec2.SecurityGroup(
            f"{name}-database",
            vpc_id=vpc.id,
            description="PostgreSQL: from the control-plane Lambdas only",
            ingress=[_in(5432, "from the control-plane Lambdas", groups=[self.lambda_sg.id])],
            tags=tags(f"{name}-database"),
            opts=child,
        )

        subnet_ids = [s.id for s in private]
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=pulumi.Output.concat("com.amazonaws.", region, ".s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[private_rt.id],
            tags=tags(f"{name}-s3"),
            opts=child,
        )
        for service in INTERFACE_ENDPOINTS:
            key = service.replace(".", "-")
            aws.ec2.VpcEndpoint(
                f"{name}-{key}",
                vpc_id=vpc.id,
                service_name=pulumi.Output.concat("com.amazonaws.", region, f".{service}"),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=subnet_ids,
                security_group_ids=[self.endpoint_sg.id],
                tags=tags(f"{name}-{key}"),
                opts=child,
            )

        self.vpc_id = vpc.id
        self.vpc_cidr = args.cidr
        self.private_subnet_ids = subnet_ids
        self.register_outputs({"vpc_id": vpc.id, "private_subnet_ids": subnet_ids})

    def _nat(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        private_rt: aws.ec2.RouteTable,
        ranges: list[ipaddress.IPv4Network],
        zones: pulumi.Output[aws.GetAvailabilityZonesResult],
        child: pulumi.ResourceOptions,
    ) -> None:
        """Public subnets, an internet gateway and one NAT gateway for outbound traffic."""
        tags = args.tagging.tags
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=tags(f"{name}-igw"), opts=child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=tags(f"{name}-public"),
            opts=child,
        )
        first: aws.ec2.Subnet | None = None
        for i in range(args.az_count):
            slot = SLOTS[i]
            subnet = aws.ec2.Subnet(
                f"{name}-public-{slot}",
                vpc_id=vpc.id,
                cidr_block=str(ranges[8 + i]),
                availability_zone=zones.names[i],
                map_public_ip_on_launch=False,
                tags=tags(f"{name}-public-{slot}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{slot}",
                subnet_id=subnet.id,
                route_table_id=public_rt.id,
                opts=child,
            )
            first = first or subnet
        assert first is not None  # az_count >= 2
        eip = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=tags(f"{name}-nat"), opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=eip.id,
            subnet_id=first.id,
            tags=tags(f"{name}-nat"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )
        aws.ec2.Route(
            f"{name}-private-egress",
            route_table_id=private_rt.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat.id,
            opts=child,
        )
