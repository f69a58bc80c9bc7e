"""Local stand-in for Alibaba Cloud OSS (the oss2 subset the migration uses), objects on disk.

Public API::

    OssConfig.from_dict(d, base_dir)            configuration (accounts, buckets, faults)
    ThreadedOssServer(config, host, port)       server in a background thread: .endpoint .port .store
                                                .faults .requests .set_faults(**changes) .stop()
    start_server(config, host, port)            start on the running loop -> RunningOssServer
    serve(config, host, port, ready=None)       serve on the running loop until cancelled
    create_app(config)                          the aiohttp application
    OssStore.head(bucket, key) / .object_path(bucket, key)   direct read access for other stand-ins
"""

from .config import BucketConfig, FaultConfig, OssConfig, OssConfigError
from .errors import OssApiError
from .faults import FaultInjector, RequestRecord
from .server import RunningOssServer, ThreadedOssServer, create_app, serve, start_server
from .store import OssStore

__all__ = [
    "BucketConfig",
    "FaultConfig",
    "FaultInjector",
    "OssApiError",
    "OssConfig",
    "OssConfigError",
    "OssStore",
    "RequestRecord",
    "RunningOssServer",
    "ThreadedOssServer",
    "create_app",
    "serve",
    "start_server",
]
