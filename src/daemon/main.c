/* main.c - tabsyncd entry point (placeholder until the server lands). */
#include <stdio.h>

int main(void) {
    puts("tabsyncd: not built yet");
    return 1;
}
