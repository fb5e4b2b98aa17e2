package dev.trilens.model;

import dev.trilens.TrilensException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Activations kept by runWithCache, by TransformerLens hook name, each [batch, ...].
 *
 * <p>Closing a cache hands its memory to the next forward pass instead of the garbage collector; tensors taken from
 * it must not be used after that. Not closing it is always safe.
 */
public final class ActivationCache implements AutoCloseable {
    private final Map<String, Tensor> byName;
    private boolean closed;

    ActivationCache(Map<String, Tensor> byName) {
        this.byName = Collections.unmodifiableMap(new LinkedHashMap<>(byName));
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            for (Tensor t : byName.values()) {
                BufferPool.give(t.data());
            }
        }
    }

    public synchronized Tensor get(String name) {
        if (closed) {
            throw new IllegalStateException("activation cache is closed; its memory has been reused");
        }
        Tensor t = byName.get(name);
        if (t == null) {
            throw new TrilensException("activation '" + name + "' is not in the cache; cached: " + byName.keySet());
        }
        return t;
    }

    /** TransformerLens's short form, e.g. get("pattern", 0) for blocks.0.attn.hook_pattern. */
    public Tensor get(String shortName, int layer) {
        return get(HookNames.full(shortName, layer));
    }

    public boolean has(String name) {
        return byName.containsKey(name);
    }

    public Set<String> names() {
        return byName.keySet();
    }

    public Tensor pattern(int layer) {
        return get(HookNames.full("pattern", layer));
    }
}
