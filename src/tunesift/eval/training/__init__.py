"""Fine-tuning a base model on a subset (:mod:`.train`): what every arm of a comparison goes through."""
