package dev.trilens.model;

/**
 * A function run on an activation during the forward pass, TransformerLens style. It sees the whole batch
 * ([batch, ...] in TransformerLens's shape for that hook point) and may overwrite any of it in place; the rest of the
 * forward pass then reads what it wrote. Hooks live only for the run they are passed to.
 */
@FunctionalInterface
public interface Hook {
    void apply(Tensor activation, String hookName);

    /** A hook bound to the hook point it runs on. */
    record At(String name, Hook hook) {
    }

    static At at(String name, Hook hook) {
        return new At(name, hook);
    }
}
