/*
 * buffer_formats_host: pyb_buffer_from_host takes a format of exactly one item
 * (an optional byte order, then one of ?cbBhHiIlLqQnNefdP) and refuses every
 * other with PYB_E_INVALID_ARGUMENT and a message that says what is wrong,
 * compared here in full; nothing is shared and the release callback never
 * runs for a refused format. An accepted format gives Python a memoryview of
 * the right length and item size whose items it reads (memoryview indexes
 * native formats; struct reads those with a byte order). Built with -Wall -Wextra -Werror and run by tests/c_programs.rs;
 * exits 1 naming the failed check.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pybridge.h"
#define HOST_CHECK_PROGRAM "buffer_formats_host"
#include "host_check.h"

static int releases;

static void count_release(void *user_data) {
    (void)user_data;
    releases++;
}

#define HEAD "pyb_buffer_from_host: PYB_E_INVALID_ARGUMENT: "
#define TAIL                                                                                  \
    "): give an optional byte order (@=<>!) and one of ?cbBhHiIlLqQnNefdP, without a repeat " \
    "count"

struct refused {
    const char *format;
    size_t itemsize;
    const char *message;
};

/* Each with an itemsize its items would take, so only the format is wrong. */
static const struct refused REFUSED[] = {
    {"dd", 16, HEAD "format \"dd\" is not a struct-module format of one item (it describes 2 items" TAIL},
    {"2d", 16, HEAD "format \"2d\" is not a struct-module format of one item (2 is a repeat count" TAIL},
    {"Zd", 16,
     HEAD "format \"Zd\" is not a struct-module format of one item ('Z' is not a struct item "
     "character" TAIL},
    {"4B", 4, HEAD "format \"4B\" is not a struct-module format of one item (4 is a repeat count" TAIL},
    {"<4B", 4, HEAD "format \"<4B\" is not a struct-module format of one item (4 is a repeat count" TAIL},
    {"1d", 8, HEAD "format \"1d\" is not a struct-module format of one item (1 is a repeat count" TAIL},
    {"d2", 8,
     HEAD "format \"d2\" is not a struct-module format of one item ('2' is a repeat count, which "
     "only comes before an item" TAIL},
    {"<dd", 16, HEAD "format \"<dd\" is not a struct-module format of one item (it describes 2 items" TAIL},
    {"x", 1, HEAD "format \"x\" is not a struct-module format of one item ('x' is padding, not an item" TAIL},
    {"s", 1, HEAD "format \"s\" is not a struct-module format of one item ('s' is a string, not an item" TAIL},
    {"3s", 3, HEAD "format \"3s\" is not a struct-module format of one item (3 is a repeat count" TAIL},
    {"p", 1, HEAD "format \"p\" is not a struct-module format of one item ('p' is a string, not an item" TAIL},
    {"", 1, HEAD "format \"\" is not a struct-module format of one item (it is empty" TAIL},
    {"<", 1,
     HEAD "format \"<\" is not a struct-module format of one item ('<' is a byte order with no item "
     "after it" TAIL},
    {"?!", 1,
     HEAD "format \"?!\" is not a struct-module format of one item ('!' is a byte order, which only "
     "comes first" TAIL},
    {"@@d", 8,
     HEAD "format \"@@d\" is not a struct-module format of one item ('@' is a byte order, which only "
     "comes first" TAIL},
    {"d<", 8,
     HEAD "format \"d<\" is not a struct-module format of one item ('<' is a byte order, which only "
     "comes first" TAIL},
    {" d", 8,
     HEAD "format \" d\" is not a struct-module format of one item (' ' is not a struct item "
     "character" TAIL},
    {"<n", 8,
     HEAD "format \"<n\" is not a struct-module format of one item ('n' has a native size only, so no "
     "byte order but '@'" TAIL},
    {"!P", 8,
     HEAD "format \"!P\" is not a struct-module format of one item ('P' has a native size only, so no "
     "byte order but '@'" TAIL},
};

struct accepted {
    const char *format;
    size_t itemsize;
    const char *zero; /* repr of an item of zero bytes */
};

static const struct accepted ACCEPTED[] = {
    {"d", 8, "0.0"},  {"<d", 8, "0.0"},  {"!i", 4, "0"}, {"=H", 2, "0"},
    {"@P", sizeof(void *), "0"}, {"n", sizeof(size_t), "0"}, {"?", 1, "False"},
    {"B", 1, "0"},    {"e", 2, "0.0"},   {">q", 8, "0"}, {"Q", 8, "0"},
};

int main(void) {
    check("pyb_engine_initialize", pyb_engine_initialize(NULL));
    unsigned char memory[64];
    memset(memory, 0, sizeof memory);

    for (size_t i = 0; i < sizeof REFUSED / sizeof REFUSED[0]; i++) {
        const struct refused *r = &REFUSED[i];
        pyb_object out = 12345;
        char what[64];
        snprintf(what, sizeof what, "format \"%s\"", r->format);
        expect(what,
               pyb_buffer_from_host(memory, 4 * r->itemsize, r->format, r->itemsize, 0, count_release,
                                    NULL, &out),
               "PYB_E_INVALID_ARGUMENT");
        char message[1024];
        pyb_last_error_message(message, sizeof message);
        if (strcmp(message, r->message) != 0) {
            fail("%s: message\n  got      %s\n  expected %s", what, message, r->message);
        }
        if (out != 12345) {
            fail("%s: out was written on failure", what);
        }
    }
    if (releases != 0) {
        fail("%d release callbacks ran for refused formats", releases);
    }
    printf("buffer_formats_host: %zu formats refused with their messages\n",
           sizeof REFUSED / sizeof REFUSED[0]);

    /* The repeat count that matches the byte count is still refused, and a
     * wrong itemsize for a good format names both. */
    expect("itemsize 4 for \"d\"",
           pyb_buffer_from_host(memory, 32, "d", 4, 0, count_release, NULL, &(pyb_object){0}),
           "PYB_E_INVALID_ARGUMENT");
    char message[1024];
    pyb_last_error_message(message, sizeof message);
    if (strcmp(message, HEAD "itemsize 4 does not match format \"d\", whose items take 8 bytes") != 0) {
        fail("itemsize 4 for \"d\": message %s", message);
    }

    /* Each accepted format gives a memoryview of 4 items that Python indexes. */
    pyb_object scope = 0;
    check("pyb_scope_new", pyb_scope_new(&scope));
    /* memoryview indexes native formats only, and 'e' from CPython 3.12;
     * struct reads the others. */
    check("def item", pyb_run("import struct\n"
                              "def item(view):\n"
                              "    if view.format[0] in '<>=!' or view.format == 'e':\n"
                              "        return struct.unpack_from(view.format, view, 3 * view.itemsize)[0]\n"
                              "    return view[3]\n",
                              "<buffer_formats_host>", scope));
    for (size_t i = 0; i < sizeof ACCEPTED / sizeof ACCEPTED[0]; i++) {
        const struct accepted *a = &ACCEPTED[i];
        pyb_object view = 0;
        check(a->format, pyb_buffer_from_host(memory, 4 * a->itemsize, a->format, a->itemsize, 0,
                                              count_release, NULL, &view));
        pyb_value key = {.tag = PYB_VALUE_STR, .data.str = {"view", 4}};
        pyb_value value = {.tag = PYB_VALUE_OBJECT, .data.object = view};
        check("pyb_setitem", pyb_setitem(scope, &key, &value));
        check("pyb_object_release", pyb_object_release(view));
        pyb_value result;
        check("index the view",
              pyb_eval("f'{len(view)} {view.format} {item(view)!r} {view.itemsize}'",
                       "<buffer_formats_host>", scope, &result));
        char expected[64];
        snprintf(expected, sizeof expected, "4 %s %s %zu", a->format, a->zero, a->itemsize);
        if (result.tag != PYB_VALUE_STR || result.data.str.len != strlen(expected) ||
            memcmp(result.data.str.ptr, expected, strlen(expected)) != 0) {
            fail("format \"%s\": Python saw '%.*s', expected '%s'", a->format,
                 result.tag == PYB_VALUE_STR ? (int)result.data.str.len : 0,
                 result.tag == PYB_VALUE_STR ? result.data.str.ptr : "", expected);
        }
        check("del view", pyb_run("del view", "<buffer_formats_host>", scope));
    }
    if (releases != (int)(sizeof ACCEPTED / sizeof ACCEPTED[0])) {
        fail("%d release callbacks for %zu shared views", releases,
             sizeof ACCEPTED / sizeof ACCEPTED[0]);
    }
    printf("buffer_formats_host: %zu one-item formats shared and indexed\n",
           sizeof ACCEPTED / sizeof ACCEPTED[0]);
    check("pyb_object_release(scope)", pyb_object_release(scope));
    check("pyb_engine_shutdown", pyb_engine_shutdown(10000, 0));
    printf("buffer_formats_host: all checks passed\n");
    return 0;
}
