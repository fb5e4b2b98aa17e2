package dev.trilens.io;

import dev.trilens.model.Weights;
import java.util.Map;

/** A loaded model and the string metadata its file carried (empty for formats without any, e.g. .pt). */
public record Checkpoint(Weights weights, Map<String, String> metadata) {
}
