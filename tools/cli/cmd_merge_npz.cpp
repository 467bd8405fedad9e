// lit merge-npz -o OUT.npz FOLDER...: the sample batch of a sharded run (the ADM evaluator's arr_0 layout,
// labels as arr_1), assembled from the shards' image folders in index order -- the same file
// `lit generate --npz` writes for an unsharded run.
#include <iostream>
#include <string>
#include <vector>

#include "model/eval/fid_inputs.h"
#include "tools/cli/commands.h"
#include "tools/cli/shards.h"

namespace lit::cli {

void add_merge_npz_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> folders;
    std::string output;
  };
  static Options opt;
  auto* cmd = app.add_subcommand("merge-npz", "Assemble the .npz sample batch of a sharded `lit generate` run");
  cmd->add_option("folders", opt.folders, "the shards' output folders (or one shared folder)")->required();
  cmd->add_option("-o,--output", opt.output, "the .npz to write (arr_0 uint8 NHWC, arr_1 labels)")->required();
  cmd->callback([] {
    const std::vector<std::string> images = run_images_in_order(opt.folders);
    const at::Tensor labels = read_folder_labels(images);  // undefined unless every PNG names its class
    write_image_batch_npz(opt.output, images, labels);
    std::cout << "merged " << images.size() << " images from " << opt.folders.size() << " folder"
              << (opt.folders.size() == 1 ? "" : "s") << (labels.defined() ? " (with their classes)" : "") << " into "
              << opt.output << std::endl;
  });
}

}  // namespace lit::cli
