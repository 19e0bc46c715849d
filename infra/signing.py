"""The key that signs async-request callbacks: a Secrets Manager secret.

The scaler and the API read it (``FLOWHOST_CALLBACK_SECRET_ARN``) and sign each callback
POST with it (``Flowhost-Signature``, see docs/async.md); users read it from the stack
output ``callbackSecretArn`` to verify signatures. Encrypted with the platform key.

The value comes from Secrets Manager's ``GetRandomPassword``, which answers anew on every
run of the program, so the version ignores changes to its string: the key is generated
once, at the first ``up``, and kept (rotate it with ``put-secret-value``; callers that
verify must then fetch it again).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["CALLBACK_KEY_LENGTH", "CallbackSecret", "CallbackSecretArgs"]

CALLBACK_KEY_LENGTH = 48


@dataclass(frozen=True)
class CallbackSecretArgs:
    kms_key_arn: pulumi.Input[str]
    tagging: Tagging


class CallbackSecret(pulumi.ComponentResource):
    """The secret and its one version (a generated, alphanumeric HMAC key)."""

    def __init__(
        self, name: str, args: CallbackSecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:CallbackSecret", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            name_prefix=f"flowhost-{args.tagging.environment}-callback-",
            description=(
                f"flowhost {args.tagging.environment}: HMAC key signing async-request callbacks"
            ),
            kms_key_id=args.kms_key_arn,
            tags=args.tagging.tags(f"{name}-secret"),
            opts=child,
        )
        key = aws.secretsmanager.get_random_password_output(
            password_length=CALLBACK_KEY_LENGTH,
            exclude_punctuation=True,
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).random_password
        version = aws.secretsmanager.SecretVersion(
            f"{name}-value",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(key),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secretString"]),
        )
        # The secret's ARN as the version reports it: readers wait for the value to exist.
        self.secret_arn = version.secret_arn
        self.register_outputs({"secret_arn": self.secret_arn})
