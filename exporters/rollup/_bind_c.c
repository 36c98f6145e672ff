/* Raw rows regrouped for binding, in C: None columns left out of the INSERT, bools bound as ints.
 *
 * CPython's sqlite3 binds an exact int, float or str directly, but runs every other
 * parameter through its adaptation protocol, which formats and discards an
 * AttributeError per None and per bool: ~0.2 us each, ~1.7 us of a model call's
 * ~6 us executemany (five Nones and three bools a row). Rows grouped by which of
 * their columns are None insert through one statement per group that names only
 * the other columns (their NULL is the column default), with True and False as 1
 * and 0, which is what sqlite3 stores for them.
 *
 * compact(rows, *, width) -> [(mask, originals, values)] | None
 * mask: bit i set when column i is None in every row of the group; originals: the
 * group's rows as given; values: the same rows without the None columns, bools as
 * ints. Groups in first-seen order, rows in given order within a group.
 * None: rows this reader leaves as they are (not a tuple of width items, more
 * than 256 groups).
 * binding.compact_rows_python is the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_WIDTH 63
#define MAX_GROUPS 256
#define SLOTS 512 /* open addressing over the masks, at most half full */

typedef struct {
    uint64_t mask;
    PyObject *originals, *values;
} Group;

typedef struct {
    Group groups[MAX_GROUPS];
    int slots[SLOTS]; /* group index + 1; 0: empty */
    int count;
} Groups;

/* Index of the group of mask (created when new); -2 past MAX_GROUPS; -1 on a Python error. */
static int group_of(Groups *all, uint64_t mask) {
    size_t slot = (size_t)((mask * UINT64_C(0x9E3779B97F4A7C15)) >> 55); /* 9 bits */
    while (all->slots[slot]) {
        int at = all->slots[slot] - 1;
        if (all->groups[at].mask == mask) {
            return at;
        }
        slot = (slot + 1) % SLOTS;
    }
    if (all->count == MAX_GROUPS) {
        return -2;
    }
    Group *group = &all->groups[all->count];
    group->mask = mask;
    group->originals = PyList_New(0);
    group->values = PyList_New(0);
    if (group->originals == NULL || group->values == NULL) {
        Py_CLEAR(group->originals);
        Py_CLEAR(group->values);
        return -1;
    }
    all->slots[slot] = ++all->count;
    return all->count - 1;
}

/* The row without its None columns, bools as ints. New reference. */
static PyObject *values_of(PyObject *row, Py_ssize_t width, uint64_t mask) {
    PyObject *values = PyTuple_New(width - __builtin_popcountll(mask));
    if (values == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < width; i++) {
        PyObject *value = PyTuple_GET_ITEM(row, i);
        if (value == Py_None) {
            continue;
        }
        /* small ints are cached: this allocates nothing */
        PyTuple_SET_ITEM(values, at++, PyBool_Check(value) ? PyLong_FromLong(value == Py_True) : Py_NewRef(value));
    }
    return values;
}

static PyObject *compact(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *names[] = {"rows", "width", NULL};
    PyObject *rows_in;
    Py_ssize_t width;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O$n", names, &rows_in, &width)) {
        return NULL;
    }
    if (width < 1 || width > MAX_WIDTH) {
        PyErr_SetString(PyExc_ValueError, "width must be within 1..63");
        return NULL;
    }
    PyObject *rows = PySequence_Fast(rows_in, "rows must be a sequence");
    if (rows == NULL) {
        return NULL;
    }
    Groups *all = calloc(1, sizeof(Groups));
    if (all == NULL) {
        Py_DECREF(rows);
        return PyErr_NoMemory();
    }
    int last = -1, status = 1; /* 1: grouped; 0: hand back; -1: error */
    Py_ssize_t size = PySequence_Fast_GET_SIZE(rows);
    PyObject **items = PySequence_Fast_ITEMS(rows);
    for (Py_ssize_t n = 0; n < size && status == 1; n++) {
        PyObject *row = items[n];
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != width) {
            status = 0;
            break;
        }
        uint64_t mask = 0;
        for (Py_ssize_t i = 0; i < width; i++) {
            if (PyTuple_GET_ITEM(row, i) == Py_None) {
                mask |= UINT64_C(1) << i;
            }
        }
        /* consecutive rows mostly share their pattern */
        int at = last >= 0 && all->groups[last].mask == mask ? last : group_of(all, mask);
        if (at < 0) {
            status = at == -2 ? 0 : -1;
            break;
        }
        last = at;
        PyObject *values = values_of(row, width, mask);
        if (values == NULL || PyList_Append(all->groups[at].originals, row) < 0 ||
            PyList_Append(all->groups[at].values, values) < 0) {
            status = -1;
        }
        Py_XDECREF(values);
    }
    PyObject *result = NULL;
    if (status == 0) {
        result = Py_NewRef(Py_None);
    } else if (status == 1) {
        result = PyList_New(all->count);
        for (int g = 0; result != NULL && g < all->count; g++) {
            const Group *group = &all->groups[g];
            PyObject *entry =
                Py_BuildValue("(KOO)", (unsigned long long)group->mask, group->originals, group->values);
            if (entry == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, g, entry);
        }
    }
    for (int g = 0; g < all->count; g++) {
        Py_DECREF(all->groups[g].originals);
        Py_DECREF(all->groups[g].values);
    }
    free(all);
    Py_DECREF(rows);
    return result;
}

static PyMethodDef methods[] = {
    {"compact", (PyCFunction)(void (*)(void))compact, METH_VARARGS | METH_KEYWORDS,
     "compact(rows, *, width) -> [(mask, originals, values)] | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_bind_c", "Raw rows regrouped for binding: no None parameters, bools as ints.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bind_c(void) { return PyModule_Create(&module_def); }
