/* Helpers shared by the fold's C grouping modules (_prefold_c.c, _bands_c.c).
 *
 * Groups are kept in a growing C array, found through a Python dict from the
 * key tuple to the index, so keys compare exactly as in the Python twins.
 */
#ifndef NEXUS_FOLD_C_H
#define NEXUS_FOLD_C_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *items;
    Py_ssize_t size, capacity;
    size_t item_size;
} Array;

static inline void *array_push(Array *array) {
    if (array->size == array->capacity) {
        Py_ssize_t capacity = array->capacity ? array->capacity * 2 : 256;
        void *items = realloc(array->items, (size_t)capacity * array->item_size);
        if (items == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        array->items = items;
        array->capacity = capacity;
    }
    void *item = (char *)array->items + (size_t)array->size * array->item_size;
    memset(item, 0, array->item_size);
    array->size++;
    return item;
}

/* An int (not a bool: Python would keep a lone one as it is) within int64; 0 otherwise. */
static inline int as_int64(PyObject *value, int64_t *out) {
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (number == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = number;
    return 1;
}

static inline int add(int64_t *sum, int64_t value) { return !__builtin_add_overflow(*sum, value, sum); }

/* key -> index into array, adding a zeroed item for a new key; -1 on a Python error. */
static inline Py_ssize_t slot_of(PyObject *index, Array *array, PyObject *key, int *is_new) {
    PyObject *found = PyDict_GetItemWithError(index, key);
    if (found != NULL) {
        *is_new = 0;
        return PyLong_AsSsize_t(found);
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *position = PyLong_FromSsize_t(array->size);
    if (position == NULL || PyDict_SetItem(index, key, position) < 0) {
        Py_XDECREF(position);
        return -1;
    }
    Py_DECREF(position);
    if (array_push(array) == NULL) {
        return -1;
    }
    *is_new = 1;
    return array->size - 1;
}

static inline PyObject *or_empty(PyObject *value, PyObject *empty) {
    int truthy = PyObject_IsTrue(value);
    if (truthy < 0) {
        return NULL;
    }
    return Py_NewRef(truthy ? value : empty);
}

/* 1 when one of the first n items of key is a float NaN: the Python twins hand such groups to SQL. */
static inline int key_has_nan(PyObject *key, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(key, k);
        if (PyFloat_Check(item) && isnan(PyFloat_AS_DOUBLE(item))) {
            return 1;
        }
    }
    return 0;
}

/* The numbers of a tuple (of at most the caller's checked size) into out; -1 with the error set. */
static inline int doubles_of(PyObject *tuple, double *out) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        out[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tuple, i));
        if (out[i] == -1.0 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

#endif
