"""Amazon EC2: each block is an EC2 instance whose worker pool connects back to this machine.

::

    from flowlib.configs.ec2 import config, fresh_config
    config = fresh_config(image_id="ami-0123456789abcdef0", key_name="my-key", region="us-east-1")

The same name as Parsl's ``parsl.configs.ec2``. Needs ``pip install 'flowlib[aws]'``
(boto3, imported when the config is loaded, not at import) and AWS credentials
(``~/.aws/credentials``, environment variables or ``profile``). On first load the
provider creates a VPC, subnet and security group for flowlib and reuses them
afterwards (see the AWS provider's documentation).

What this config assumes:

- ``image_id``: an AMI with Python and flowlib installed (the default is a
  placeholder that AWS refuses; set it), or one on which ``worker_init`` installs
  them (e.g. ``"pip3 install flowlib"``).
- ``instance_type`` ``t2.small``, one instance per block, up to ``max_blocks``
  instances; instances end after ``walltime``.
- This machine must be reachable from the instances on the interchange's ports
  (a public address, or run inside the same VPC).
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.aws import AWSProvider

__all__ = ["IMAGE_PLACEHOLDER", "config", "fresh_config"]

IMAGE_PLACEHOLDER = "ami-YOUR_IMAGE_ID"
"""The default ``image_id``: not a real AMI; set yours."""


def fresh_config(
    *,
    image_id: str = IMAGE_PLACEHOLDER,
    key_name: str | None = None,
    region: str = "us-east-1",
    instance_type: str = "t2.small",
    profile: str | None = None,
    walltime: str = "01:00:00",
    max_blocks: int = 1,
    spot_max_bid: float = 0,
    worker_init: str = "",
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"ec2_single_node"`` on an AWSProvider.

    :param image_id: the AMI the instances boot.
    :param key_name: an EC2 key pair, to log in to instances (None: none).
    :param region: the AWS region.
    :param instance_type: the EC2 instance type.
    :param profile: the AWS credentials profile (None: the default chain).
    :param walltime: how long each instance may run.
    :param max_blocks: the most instances at once.
    :param spot_max_bid: the highest spot price to pay (0: on-demand instances).
    :param worker_init: shell run on each instance before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = AWSProvider(
        image_id=image_id,
        key_name=key_name,
        region=region,
        instance_type=instance_type,
        profile=profile,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        nodes_per_block=1,
        walltime=walltime,
        spot_max_bid=spot_max_bid,
        worker_init=worker_init,
    )
    executor = HighThroughputExecutor(label="ec2_single_node", provider=provider)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
