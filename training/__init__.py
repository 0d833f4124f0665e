"""The training pipeline: task generators, mixture of denoisers, packing, Lightning modules."""
