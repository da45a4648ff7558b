/* lossdoctor._cscan: the hf-console reader's template matcher, compiled (optional).

   One function, match(text, keys, quoted), does at C speed what lossdoctor/sources/_hf_scan.py's regex
   ``\{'(?:TEMPLATE|OTHER)`` with ``findall`` does in Python, and returns the result column-wise instead of a
   tuple per match:

   - TEMPLATE is the dominant dict layout: ``{'`` key0 ``': `` value0 ``, '`` key1 ``': `` value1 ... ``}``, each
     value quoted (``'[^'\n\r{}]*'``) or bare (``[^,}'\n\r{]*``) as ``quoted`` says;
   - OTHER is any other ``{'`` up to the first ``}`` with no ``{``, ``}``, CR or LF before it;
   - both are followed by an optional tqdm bar (``_AFTER`` in _hf_scan.py): ``\r?\n``, up to 64 cursor-up or
     CR redraws, blanks, 1-3 decimal digits, ``%|``, the bar, ``|``, an optional blank, 1-18 digits, ``/``, 1-18
     digits, `` [``; its two counters are returned.

   Every quantifier of that regex is possessive (or behaves so: what follows it cannot match what it repeats),
   so matching is a left-to-right walk with no backtracking, which this file implements exactly. Digits are
   Unicode decimal digits, as ``\d`` is for ``re`` on str. The Python regex stays the reference: the tests run
   both matchers on the same text and compare.

   Values: a value written plainly (ASCII ``[-+]?(digits[.digits]|.digits)([eE][-+]?digits)?``) is converted
   here to the double ``float()`` gives: exactly, with one IEEE operation when its digits fit 2^53 and its
   power of ten is at most 22 (both factors exact, so the result is correctly rounded); with exact 128-bit
   integer arithmetic for up to 19 digits and powers of ten from -21 to 19 (a repr'd float: 17 digits); else
   with ``PyOS_string_to_double`` (what ``float()`` itself calls). Any other value (nan, inf, blanks, empty, ...) is
   handed back as a str for Python to convert, so the set of accepted values is ``float()``'s.

   The text is a str (any width) or UTF-8 bytes, matched as their text decoded with errors="replace" would be:
   an ill-formed byte never matches a stop character or a digit (as U+FFFD would not), a multi-byte digit is
   one \d, keys are compared as UTF-8 (the caller does not pass keys holding U+FFFD), and the values and
   bodies handed back are decoded (every piece starts and ends next to an ASCII character, where decoding is
   in step with the whole text's). text_facts() gives the rest of what a chunk's decoding told: how many
   U+FFFD it has and whether "wandb:" occurs.

   Returns (template, values, bar_n, bar_t, deferred, others):
   - template: bytearray, one byte per match (1: the template matched, 0: OTHER);
   - values: bytearray of doubles, k per template match, in match order (deferred ones NaN);
   - bar_n, bar_t: bytearray of int64 per match (-1: no bar after it);
   - deferred: list of (template match number, value index, value str);
   - others: list of (match number, body str), the body being the text after ``{'`` up to ``}`` included.

   Nothing here is executed from the log: the text is only compared and converted. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_put(Buf *b, const void *src, Py_ssize_t n) {
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = PyMem_Realloc(b->data, (size_t)cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static PyObject *buf_take(Buf *b) {
    PyObject *out = PyByteArray_FromStringAndSize(b->data ? b->data : "", b->len);
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    return out;
}

/* exact powers of ten (10^22 is the largest a double holds exactly) */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if defined(__SIZEOF_INT128__)
typedef unsigned __int128 u128;

static inline int bits128(u128 x) {
    int n = 0;
    if (x >> 64) {
        x >>= 64;
        n = 64;
    }
    uint64_t lo = (uint64_t)x;
    return lo ? n + 64 - __builtin_clzll(lo) : n;
}

/* The double nearest to (q + f) * 2^exp2, f in [0, 1) non-zero iff sticky, ties to even; q has at least 54
   significant bits when sticky (so f only breaks ties), and the result is a normal double. */
static inline double round_scaled(u128 q, int sticky, int exp2) {
    int extra = bits128(q) - 53;
    if (extra <= 0) return ldexp((double)(uint64_t)q, exp2); /* exact (never sticky here) */
    uint64_t mant = (uint64_t)(q >> extra);
    u128 rest = q & (((u128)1 << extra) - 1), half = (u128)1 << (extra - 1);
    if (rest > half || (rest == half && (sticky || (mant & 1)))) {
        if (++mant == (UINT64_C(1) << 53)) {
            mant >>= 1;
            extra++;
        }
    }
    return ldexp((double)mant, extra + exp2);
}

/* mant x 10^e (mant > 0, at most 19 digits) correctly rounded, with exact integer arithmetic: 1 with *out set
   when e is within [-21, 19] (the numbers in a log), else 0. A product is an exact 128-bit integer; a quotient
   is taken with 54+ significant bits and its remainder, so the rounding is decided exactly. */
static int exact_decimal(uint64_t mant, long e, double *out) {
    if (e >= 0) {
        if (e > 19) return 0;
        u128 p = 1;
        for (long i = 0; i < e; i++) p *= 10;
        *out = round_scaled((u128)mant * p, 0, 0);
        return 1;
    }
    if (e < -21) return 0;
    u128 d = 1;
    for (long i = 0; i < -e; i++) d *= 10;
    int s = 55 + bits128(d) - bits128(mant);
    if (s < 0) s = 0;
    if (bits128(mant) + s > 127) return 0;
    u128 num = (u128)mant << s;
    *out = round_scaled(num / d, num % d != 0, -s);
    return 1;
}
#endif

/* The double float() gives for the ASCII text s[0:n], when it is a plainly written number: 0 with *out set;
   else 1 (the caller defers it to Python's float(), which also answers for any error of the conversion here,
   so none is left set). */
static int plain_number(const char *s, Py_ssize_t n, double *out) {
    Py_ssize_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    uint64_t mant = 0;
    int sig = 0;          /* significant digits in mant (leading zeros skipped) */
    int dropped = 0;      /* significant digits beyond 19 (not in mant) */
    long scale = 0;       /* power of ten of mant's last digit */
    int int_digits = 0, frac_digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, int_digits++) {
        if (sig < 19) {
            if (sig || s[i] != '0') {
                mant = mant * 10 + (uint64_t)(s[i] - '0');
                sig++;
            }
        } else {
            dropped++;
            scale++;
        }
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, frac_digits++) {
            if (sig < 19) {
                if (sig || s[i] != '0') {
                    mant = mant * 10 + (uint64_t)(s[i] - '0');
                    sig++;
                }
                scale--;
            } else {
                dropped++;
            }
        }
    }
    if (int_digits + frac_digits == 0) return 1;
    long exp10 = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, edigits = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, edigits++)
            if (exp10 < 100000) exp10 = exp10 * 10 + (s[i] - '0');
        if (edigits == 0) return 1;
        if (eneg) exp10 = -exp10;
    }
    if (i != n) return 1;
    long e = scale + exp10;
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    if (!dropped && mant <= (UINT64_C(1) << 53) && e >= -22 && e <= 22) {
        double x = (double)mant;
        x = e < 0 ? x / POW10[-e] : x * POW10[e];
        *out = neg ? -x : x;
        return 0;
    }
#endif
#if defined(__SIZEOF_INT128__)
    if (!dropped && mant && exact_decimal(mant, e, out)) {
        if (neg) *out = -*out;
        return 0;
    }
#endif
    if (n >= 128) return 1;
    char tmp[128];
    memcpy(tmp, s, (size_t)n);
    tmp[n] = '\0';
    char *end = NULL;
    double x = PyOS_string_to_double(tmp, &end, NULL);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
    }
    if (end != tmp + n) return 1;
    *out = x;
    return 0;
}

/* one key of the template, as code points and as UTF-8 */
typedef struct {
    Py_UCS4 *chars;
    Py_ssize_t len;
    const char *utf8;
    Py_ssize_t utf8_len;
    int quoted;
} Key;

/* UTF-8 at s[q] (q < len): the length of the well-formed sequence there with its code point in *cp, or, for an
   ill-formed one, 0 with *skip set to the length of its maximal subpart (the bytes a decoder replaces by one
   U+FFFD, as Python's does: Unicode's table 3-7 of well-formed byte sequences). */
static Py_ssize_t utf8_decode(const unsigned char *s, Py_ssize_t len, Py_ssize_t q, Py_UCS4 *cp, Py_ssize_t *skip) {
    unsigned char c = s[q];
    Py_ssize_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the first continuation byte */
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        *cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        *cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *skip = 1;
        return 0;
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        if (q + i >= len || s[q + i] < lo || s[q + i] > hi) {
            *skip = i;
            return 0;
        }
        *cp = (*cp << 6) | (s[q + i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

/* The code point of the well-formed UTF-8 sequence at s[q] and its length; 0 when it is ill-formed. */
static inline Py_ssize_t utf8_char(const unsigned char *s, Py_ssize_t len, Py_ssize_t q, Py_UCS4 *cp) {
    Py_ssize_t skip;
    return utf8_decode(s, len, q, cp, &skip);
}

typedef struct {
    Buf tmpl, vals, bar_n, bar_t;
    PyObject *deferred, *others;
    Py_ssize_t rows, tmpl_rows;
} Out;

#define SCAN_CHAR Py_UCS1
#define SCAN_NAME(x) x##_1
#include "_cscan_body.h"
#undef SCAN_CHAR
#undef SCAN_NAME

#define SCAN_CHAR Py_UCS2
#define SCAN_NAME(x) x##_2
#include "_cscan_body.h"
#undef SCAN_CHAR
#undef SCAN_NAME

#define SCAN_CHAR Py_UCS4
#define SCAN_NAME(x) x##_4
#include "_cscan_body.h"
#undef SCAN_CHAR
#undef SCAN_NAME

#define SCAN_CHAR unsigned char
#define SCAN_NAME(x) x##_utf8
#define SCAN_UTF8
#include "_cscan_body.h"
#undef SCAN_CHAR
#undef SCAN_NAME
#undef SCAN_UTF8

static void free_keys(Key *keys, Py_ssize_t k) {
    if (keys == NULL) return;
    for (Py_ssize_t j = 0; j < k; j++) PyMem_Free(keys[j].chars);
    PyMem_Free(keys);
}

static PyObject *cscan_match(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *text, *key_tuple, *quoted_tuple;
    if (!PyArg_ParseTuple(args, "OO!O!:match", &text, &PyTuple_Type, &key_tuple, &PyTuple_Type, &quoted_tuple))
        return NULL;
    int is_str = PyUnicode_Check(text);
    Py_buffer raw = {0};
    if (!is_str && PyObject_GetBuffer(text, &raw, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t k = PyTuple_GET_SIZE(key_tuple);
    if (k == 0 || PyTuple_GET_SIZE(quoted_tuple) != k) {
        PyErr_SetString(PyExc_ValueError, "match: keys and quoted must be non-empty and of one length");
        if (!is_str) PyBuffer_Release(&raw);
        return NULL;
    }
    Key *keys = PyMem_Calloc((size_t)k, sizeof(Key));
    if (keys == NULL) {
        if (!is_str) PyBuffer_Release(&raw);
        return PyErr_NoMemory();
    }
    int rc = -1;
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *key = PyTuple_GET_ITEM(key_tuple, j);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "match: keys must be str");
            goto fail;
        }
        keys[j].len = PyUnicode_GET_LENGTH(key);
        keys[j].chars = PyUnicode_AsUCS4Copy(key);
        if (keys[j].chars == NULL) goto fail;
        if (!is_str) { /* bytes are compared with the key's UTF-8 (kept by the key, alive till return) */
            keys[j].utf8 = PyUnicode_AsUTF8AndSize(key, &keys[j].utf8_len);
            if (keys[j].utf8 == NULL) goto fail;
        }
        int q = PyObject_IsTrue(PyTuple_GET_ITEM(quoted_tuple, j));
        if (q < 0) goto fail;
        keys[j].quoted = q;
    }
    Out out = {0};
    out.deferred = PyList_New(0);
    out.others = PyList_New(0);
    if (out.deferred != NULL && out.others != NULL && !is_str) {
        rc = scan_utf8(text, (const unsigned char *)raw.buf, raw.len, keys, k, &out);
    } else if (out.deferred != NULL && out.others != NULL) {
        const void *data = PyUnicode_DATA(text);
        Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        switch (PyUnicode_KIND(text)) {
            case PyUnicode_1BYTE_KIND:
                rc = scan_1(text, (const Py_UCS1 *)data, len, keys, k, &out);
                break;
            case PyUnicode_2BYTE_KIND:
                rc = scan_2(text, (const Py_UCS2 *)data, len, keys, k, &out);
                break;
            default:
                rc = scan_4(text, (const Py_UCS4 *)data, len, keys, k, &out);
                break;
        }
    }
    free_keys(keys, k);
    keys = NULL;
    if (!is_str) PyBuffer_Release(&raw);
    PyObject *result = NULL;
    if (rc == 0) {
        PyObject *tmpl = buf_take(&out.tmpl), *vals = buf_take(&out.vals);
        PyObject *bn = buf_take(&out.bar_n), *bt = buf_take(&out.bar_t);
        if (tmpl && vals && bn && bt)
            result = Py_BuildValue("(NNNNOO)", tmpl, vals, bn, bt, out.deferred, out.others);
        else {
            Py_XDECREF(tmpl);
            Py_XDECREF(vals);
            Py_XDECREF(bn);
            Py_XDECREF(bt);
        }
    } else {
        PyMem_Free(out.tmpl.data);
        PyMem_Free(out.vals.data);
        PyMem_Free(out.bar_n.data);
        PyMem_Free(out.bar_t.data);
    }
    Py_XDECREF(out.deferred);
    Py_XDECREF(out.others);
    return result;
fail:
    free_keys(keys, k);
    if (!is_str) PyBuffer_Release(&raw);
    return NULL;
}

/* Whether "wandb:" starts at s[i]. */
static inline int wandb_at(const unsigned char *s, Py_ssize_t len, Py_ssize_t i) {
    return s[i] == 'w' && i + 6 <= len && memcmp(s + i, "wandb:", 6) == 0;
}

/* text_facts(data) -> (replacements, wandb): for UTF-8 bytes, how many U+FFFD decoding them with
   errors="replace" gives (one per ill-formed maximal subpart, plus each U+FFFD written in the text), and
   whether "wandb:" occurs in them. */
static PyObject *cscan_text_facts(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *s = view.buf;
    Py_ssize_t len = view.len, count = 0, q = 0;
    int wandb = 0;
    const uint64_t high = UINT64_C(0x8080808080808080), ones = UINT64_C(0x0101010101010101);
    while (q < len) {
        /* ASCII eight bytes at a time, looking for a 'w' (SWAR: a zero byte of word ^ "wwwwwwww") */
        while (q + 8 <= len) {
            uint64_t word;
            memcpy(&word, s + q, 8);
            if (word & high) break;
            uint64_t x = word ^ (ones * 'w');
            if (!wandb && ((x - ones) & ~x & high)) {
                for (Py_ssize_t i = q; i < q + 8; i++) wandb |= wandb_at(s, len, i);
            }
            q += 8;
        }
        if (q >= len) break;
        if (s[q] < 0x80) {
            if (!wandb) wandb = wandb_at(s, len, q);
            q++;
            continue;
        }
        Py_UCS4 cp;
        Py_ssize_t skip;
        Py_ssize_t n = utf8_decode(s, len, q, &cp, &skip);
        if (n == 0) {
            count++;
            q += skip;
        } else {
            count += cp == 0xFFFD;
            q += n;
        }
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nO)", count, wandb ? Py_True : Py_False);
}

static PyMethodDef cscan_methods[] = {
    {"match", cscan_match, METH_VARARGS,
     "match(text, keys, quoted) -> (template, values, bar_n, bar_t, deferred, others): the template / catch-all "
     "matches of _hf_scan's regex over text, column-wise (see the module source)."},
    {"text_facts", cscan_text_facts, METH_O,
     "text_facts(data) -> (replacements, wandb): U+FFFD count of decoding UTF-8 data with errors='replace', and "
     "whether 'wandb:' occurs in it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cscan_module = {
    PyModuleDef_HEAD_INIT, "_cscan", "The hf-console reader's compiled template matcher.", -1, cscan_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cscan(void) { return PyModule_Create(&cscan_module); }
