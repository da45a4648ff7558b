/* The matcher of _cscan.c for one width of str data (SCAN_CHAR: Py_UCS1, Py_UCS2 or Py_UCS4), or for UTF-8
   bytes (SCAN_CHAR unsigned char with SCAN_UTF8 defined). Included once per kind by _cscan.c, with SCAN_NAME
   giving each copy its own names. */

/* The decimal digit (what \d matches in a str regex: any Unicode decimal digit) starting at s[q], its value;
   -1 for any other character. *w is set to its length in code units (bytes for UTF-8: an undecodable byte is
   U+FFFD, no digit). */
static inline int SCAN_NAME(digit)(const SCAN_CHAR *s, Py_ssize_t len, Py_ssize_t q, Py_ssize_t *w) {
    SCAN_CHAR c = s[q];
    *w = 1;
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c < 128) return -1;
#ifdef SCAN_UTF8
    Py_UCS4 cp;
    Py_ssize_t n = utf8_char(s, len, q, &cp);
    if (n == 0) return -1;
    *w = n;
    return Py_UNICODE_TODECIMAL(cp);
#else
    (void)len;
    return Py_UNICODE_TODECIMAL((Py_UCS4)c);
#endif
}

/* The optional tqdm bar after a dict, from p: its end (p when there is none), its two counters in *bn / *bt
   (-1 when there is none). */
static Py_ssize_t SCAN_NAME(after)(const SCAN_CHAR *s, Py_ssize_t len, Py_ssize_t p, int64_t *bn, int64_t *bt) {
    Py_ssize_t q = p;
    *bn = *bt = -1;
    if (q < len && s[q] == '\r') q++;
    if (q >= len || s[q] != '\n') return p;
    q++;
    for (int reps = 0; reps < 64; reps++) {
        if (q + 2 < len && s[q] == 0x1b && s[q + 1] == '[' && s[q + 2] == 'A')
            q += 3;
        else if (q < len && s[q] == '\r')
            q++;
        else
            break;
    }
    while (q < len && (s[q] == ' ' || s[q] == '\t')) q++;
    int d = 0;
    Py_ssize_t w;
    while (d < 3 && q < len && SCAN_NAME(digit)(s, len, q, &w) >= 0) q += w, d++;
    if (d == 0) return p;
    if (q + 1 >= len || s[q] != '%' || s[q + 1] != '|') return p;
    q += 2;
    while (q < len && s[q] != '|' && s[q] != '\r' && s[q] != '\n') q++;
    if (q >= len || s[q] != '|') return p;
    q++;
    if (q < len && s[q] == ' ') q++;
    int64_t counters[2];
    for (int c = 0; c < 2; c++) {
        int64_t v = 0;
        int dv;
        d = 0;
        while (d < 18 && q < len && (dv = SCAN_NAME(digit)(s, len, q, &w)) >= 0) {
            v = v * 10 + dv;
            q += w, d++;
        }
        if (d == 0) return p;
        if (q >= len || s[q] != (c == 0 ? '/' : ' ')) return p;
        q++;
        counters[c] = v;
    }
    if (q >= len || s[q] != '[') return p;
    *bn = counters[0];
    *bt = counters[1];
    return q + 1;
}

/* Whether s[p:] starts with the k-char literal lit (ASCII). */
static inline int SCAN_NAME(lit)(const SCAN_CHAR *s, Py_ssize_t len, Py_ssize_t p, const char *lit, int k) {
    if (p + k > len) return 0;
    for (int i = 0; i < k; i++)
        if (s[p + i] != (SCAN_CHAR)(unsigned char)lit[i]) return 0;
    return 1;
}

/* The template from p (just after "{'"): the end after its "}" and each value's [start, end) in spans, or -1. */
static Py_ssize_t SCAN_NAME(tmpl)(const SCAN_CHAR *s, Py_ssize_t len, Py_ssize_t p, const Key *keys, Py_ssize_t k,
                                  Py_ssize_t *spans) {
    for (Py_ssize_t j = 0; j < k; j++) {
        if (j > 0) {
            if (!SCAN_NAME(lit)(s, len, p, ", '", 3)) return -1;
            p += 3;
        }
        const Key *key = &keys[j];
#ifdef SCAN_UTF8
        if (p + key->utf8_len > len || memcmp(s + p, key->utf8, (size_t)key->utf8_len) != 0) return -1;
        p += key->utf8_len;
#else
        if (p + key->len > len) return -1;
        for (Py_ssize_t i = 0; i < key->len; i++)
            if ((Py_UCS4)s[p + i] != key->chars[i]) return -1;
        p += key->len;
#endif
        if (!SCAN_NAME(lit)(s, len, p, "': ", 3)) return -1;
        p += 3;
        if (key->quoted) {
            if (p >= len || s[p] != '\'') return -1;
            p++;
            spans[2 * j] = p;
            while (p < len && s[p] != '\'' && s[p] != '\n' && s[p] != '\r' && s[p] != '{' && s[p] != '}') p++;
            spans[2 * j + 1] = p;
            if (p >= len || s[p] != '\'') return -1;
            p++;
        } else {
            spans[2 * j] = p;
            while (p < len && s[p] != ',' && s[p] != '}' && s[p] != '\'' && s[p] != '\n' && s[p] != '\r' &&
                   s[p] != '{')
                p++;
            spans[2 * j + 1] = p;
        }
    }
    if (p >= len || s[p] != '}') return -1;
    return p + 1;
}

/* The text of s[a:b] as a str (bytes decoded as UTF-8, an undecodable byte becoming U+FFFD as when the whole
   text is decoded: a and b sit next to ASCII characters, where decoding is in step). */
static inline PyObject *SCAN_NAME(piece)(PyObject *text, const SCAN_CHAR *s, Py_ssize_t a, Py_ssize_t b) {
#ifdef SCAN_UTF8
    (void)text;
    return PyUnicode_DecodeUTF8((const char *)s + a, b - a, "replace");
#else
    (void)s;
    return PyUnicode_Substring(text, a, b);
#endif
}

/* The next "{'" at or after p, or -1. */
static inline Py_ssize_t SCAN_NAME(next_open)(const SCAN_CHAR *s, Py_ssize_t len, Py_ssize_t p) {
    while (p + 1 < len) {
        if (sizeof(SCAN_CHAR) == 1) {
            const SCAN_CHAR *hit = memchr(s + p, '{', (size_t)(len - 1 - p));
            if (hit == NULL) return -1;
            p = hit - s;
        } else {
            while (p + 1 < len && s[p] != '{') p++;
            if (p + 1 >= len) return -1;
        }
        if (s[p + 1] == '\'') return p;
        p++;
    }
    return -1;
}

static int SCAN_NAME(scan)(PyObject *text, const SCAN_CHAR *s, Py_ssize_t len, const Key *keys, Py_ssize_t k,
                           Out *out) {
    Py_ssize_t *spans = PyMem_Malloc((size_t)(2 * k) * sizeof(Py_ssize_t));
    double *row = PyMem_Malloc((size_t)k * sizeof(double));
    int rc = -1;
    if (spans == NULL || row == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t p = 0;
    for (;;) {
        Py_ssize_t open = SCAN_NAME(next_open)(s, len, p);
        if (open < 0) break;
        Py_ssize_t body = open + 2;
        unsigned char is_tmpl = 1;
        Py_ssize_t end = SCAN_NAME(tmpl)(s, len, body, keys, k, spans);
        if (end < 0) {
            is_tmpl = 0;
            Py_ssize_t q = body;
            while (q < len && s[q] != '{' && s[q] != '}' && s[q] != '\n' && s[q] != '\r') q++;
            if (q >= len || s[q] != '}') {
                p = open + 1;
                continue;
            }
            end = q + 1;
            PyObject *body_text = SCAN_NAME(piece)(text, s, body, end);
            if (body_text == NULL) goto done;
            PyObject *item = Py_BuildValue("(nN)", out->rows, body_text);
            if (item == NULL || PyList_Append(out->others, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
        } else {
            for (Py_ssize_t j = 0; j < k; j++) {
                Py_ssize_t a = spans[2 * j], b = spans[2 * j + 1];
                char ascii[64];
                int plain = b - a < (Py_ssize_t)sizeof(ascii);
                for (Py_ssize_t i = a; plain && i < b; i++) {
                    if (s[i] >= 128)
                        plain = 0;
                    else
                        ascii[i - a] = (char)s[i];
                }
                if (!plain || plain_number(ascii, b - a, &row[j])) {
                    row[j] = Py_NAN;
                    PyObject *value = SCAN_NAME(piece)(text, s, a, b);
                    if (value == NULL) goto done;
                    PyObject *item = Py_BuildValue("(nnN)", out->tmpl_rows, j, value);
                    if (item == NULL || PyList_Append(out->deferred, item) < 0) {
                        Py_XDECREF(item);
                        goto done;
                    }
                    Py_DECREF(item);
                }
            }
            if (buf_put(&out->vals, row, k * (Py_ssize_t)sizeof(double)) < 0) goto done;
            out->tmpl_rows++;
        }
        int64_t bn, bt;
        p = SCAN_NAME(after)(s, len, end, &bn, &bt);
        if (buf_put(&out->tmpl, &is_tmpl, 1) < 0 || buf_put(&out->bar_n, &bn, sizeof bn) < 0 ||
            buf_put(&out->bar_t, &bt, sizeof bt) < 0)
            goto done;
        out->rows++;
    }
    rc = 0;
done:
    PyMem_Free(spans);
    PyMem_Free(row);
    return rc;
}
