//! Mesh simulator: sends traffic by route weights and exports Linkerd-format metrics.
