/** openDataset: picks the layout by URL (see dataset.ts). */
import type { Dataset, OpenDatasetOptions } from './dataset.js';
import { openFolderDataset } from './folder-dataset.js';
import { openRecordIODataset } from './recordio-dataset.js';

/** Opens a `.rec` file (by extension) or a folder of images. */
export function openDataset(url: string, options: OpenDatasetOptions): Promise<Dataset> {
  return url.endsWith('.rec') ? openRecordIODataset(url, options) : openFolderDataset(url, options);
}
