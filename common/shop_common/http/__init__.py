"""The REST contract: request models (api) and response models (responses), one definition each."""
