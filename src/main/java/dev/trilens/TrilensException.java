package dev.trilens;

/**
 * An error the user can act on: bad input file, flag, token or shape. The CLI prints its message as one line
 * and exits non-zero, so the message must say what was wrong and what was expected.
 */
public class TrilensException extends RuntimeException {
    public TrilensException(String message) {
        super(message);
    }

    public TrilensException(String message, Throwable cause) {
        super(message, cause);
    }
}
