from magvit2.config.base import Config, ConfigError

__all__ = ["Config", "ConfigError"]
