package dev.trilens.io;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.LinkedHashMap;

/** A record's JSON properties by key, for code that reads them by name (text tables, metric lookups). */
public final class JsonFields {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final TypeReference<LinkedHashMap<String, Object>> MAP = new TypeReference<>() {
    };

    private JsonFields() {
    }

    /** The properties Jackson writes for value, in its order; numbers stay Integer, Long or Double (NaN included). */
    public static LinkedHashMap<String, Object> of(Object value) {
        return JSON.convertValue(value, MAP);
    }
}
