#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"
int main(void) {
  FILE *fi = fopen("input.f32", "rb"); static float x[256*12]; fread(x, 4, 256*12, fi); fclose(fi);
  int types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
  const char *names[] = {"q8_0","q4_0","q5_0","q5_1","q4_k","q5_k","q6_k"};
  for (int t = 0; t < 7; t++) {
    static unsigned char buf[1<<20];
    ggml_quantize_init(types[t]);
    size_t n = ggml_quantize_chunk(types[t], x, buf, 0, 12, 256, NULL);
    char fn[64]; sprintf(fn, "%s.bin", names[t]);
    FILE *fo = fopen(fn, "wb"); fwrite(buf, 1, n, fo); fclose(fo);
    printf("%s %zu\n", names[t], n);
  }
  return 0;
}
