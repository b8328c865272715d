/* TensorFlow's decode_and_crop_jpeg, the way its jpeg_mem.cc decodes a crop window: RGB, fancy
 * upsampling, the chosen DCT, jpeg_crop_scanline (the window's left side moved down to an iMCU
 * boundary) and jpeg_skip_scanlines, only the rows down to the window's bottom. Built against
 * the system's libjpeg-turbo (-ljpeg) by mlpmixer/data/jpeg_crop.py through
 * models/fast/kernel_cache.py; errors come back as -1 and a message (libjpeg's error_exit
 * jumps back here instead of ending the process), warnings are ignored as TF ignores them. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct failure {
  struct jpeg_error_mgr manager;
  jmp_buf jump;
  char *message;
  int message_size;
};

static void fail(j_common_ptr cinfo) {
  struct failure *f = (struct failure *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  snprintf(f->message, f->message_size, "%s", text);
  longjmp(f->jump, 1);
}

static void quiet(j_common_ptr cinfo, int level) { (void)cinfo; (void)level; }

int mlpmixer_decode_crop(const unsigned char *data, unsigned long size, int fast_dct, int left,
                         int top, int width, int height, unsigned char *out, char *message,
                         int message_size) {
  struct jpeg_decompress_struct cinfo;
  struct failure f;
  unsigned char *volatile line = NULL;
  JDIMENSION x = (JDIMENSION)left, w = (JDIMENSION)width;
  int i;
  cinfo.err = jpeg_std_error(&f.manager);
  f.manager.error_exit = fail;
  f.manager.emit_message = quiet;
  f.message = message;
  f.message_size = message_size;
  if (setjmp(f.jump)) {
    jpeg_destroy_decompress(&cinfo);
    free(line);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, size);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  cinfo.dct_method = fast_dct ? JDCT_IFAST : JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  if (left < 0 || top < 0 || width < 1 || height < 1 ||
      (JDIMENSION)(left + width) > cinfo.output_width ||
      (JDIMENSION)(top + height) > cinfo.output_height) {
    snprintf(message, message_size, "crop window outside the %ux%u image",
             cinfo.output_width, cinfo.output_height);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  jpeg_crop_scanline(&cinfo, &x, &w);
  line = malloc((size_t)w * cinfo.output_components);
  if (line == NULL) {
    snprintf(message, message_size, "out of memory");
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  if (top > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)top);
  for (i = 0; i < height; i++) {
    JSAMPROW row = line;
    jpeg_read_scanlines(&cinfo, &row, 1);
    memcpy(out + (size_t)i * width * 3, line + (size_t)(left - (int)x) * 3, (size_t)width * 3);
  }
  free(line);
  line = NULL;
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}
